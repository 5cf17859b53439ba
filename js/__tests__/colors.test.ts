import { describe, expect, it } from "vitest";
import { lut } from "../colormap";
import { MISSING, categoryColor, columnColors, columnText, decodeColumn } from "../scatter/colors";

describe("decodeColumn", () => {
  it("reads little-endian buffers of each dtype, from a DataView window too", () => {
    const f = new Float32Array([1.5, -2, NaN]);
    const backing = new Uint8Array(4 + f.byteLength);
    backing.set(new Uint8Array(f.buffer), 4);
    const col = decodeColumn({ key: "x", title: "x", kind: "value", dtype: "float32", min: -2, max: 1.5 }, new DataView(backing.buffer, 4), 3);
    expect(Array.from(col.data)).toEqual([1.5, -2, NaN]);
    const u16 = decodeColumn({ key: "c", title: "c", kind: "category", dtype: "uint16", categories: [] }, new Uint16Array([3, 300]), 2);
    expect(Array.from(u16.data)).toEqual([3, 300]);
  });
  it("refuses a buffer of the wrong size", () => {
    expect(() => decodeColumn({ key: "x", title: "x", kind: "category", dtype: "uint8" }, new Uint8Array(3), 4)).toThrow(/3 bytes, expected 4 uint8/);
  });
});

describe("columnColors", () => {
  it("colours categories with tab10 (hex from matplotlib) and missing codes grey", () => {
    const col = decodeColumn({ key: "label", title: "t", kind: "category", dtype: "uint8", categories: ["a", "b", "c"], missing: 255 }, new Uint8Array([0, 2, 255, 1]), 4);
    const rgba = columnColors(col, 4);
    expect(Array.from(rgba.slice(0, 4))).toEqual([0x1f, 0x77, 0xb4, 255]);
    expect(Array.from(rgba.slice(4, 8))).toEqual([0x2c, 0xa0, 0x2c, 255]);
    expect(Array.from(rgba.slice(8, 12))).toEqual([...MISSING, 255]);
    expect(Array.from(rgba.slice(12, 16))).toEqual([0xff, 0x7f, 0x0e, 255]);
  });
  it("uses red/green for correct, tab20 up to 20 categories and distinct hues beyond", () => {
    expect(categoryColor(0, 2, "correct")).toEqual([0xd1, 0x24, 0x2f]);
    expect(categoryColor(1, 2, "correct")).toEqual([0x2d, 0xa4, 0x4e]);
    expect(categoryColor(1, 15)).toEqual([0xae, 0xc7, 0xe8]);
    const many = new Set(Array.from({ length: 60 }, (_, i) => categoryColor(i, 60).join(",")));
    expect(many.size).toBe(60);
  });
  it("maps values linearly onto viridis between min and max; NaN is missing", () => {
    const col = decodeColumn({ key: "loss", title: "Loss", kind: "value", dtype: "float32", min: 1, max: 3 }, new Float32Array([1, 2, 3, NaN]), 4);
    const rgba = columnColors(col, 4);
    const v = lut("viridis");
    expect(Array.from(rgba.slice(0, 3))).toEqual(Array.from(v.slice(0, 3)));
    expect(Array.from(rgba.slice(4, 7))).toEqual(Array.from(v.slice(128 * 3, 128 * 3 + 3))); // round(0.5*255)=128
    expect(Array.from(rgba.slice(8, 11))).toEqual(Array.from(v.slice(255 * 3, 255 * 3 + 3)));
    expect(Array.from(rgba.slice(12, 15))).toEqual(MISSING);
  });
  it("writes readable texts", () => {
    const cat = decodeColumn({ key: "g", title: "g", kind: "category", dtype: "uint8", categories: ["x", "y"] }, new Uint8Array([1, 9]), 2);
    expect(columnText(cat, 0)).toBe("y");
    expect(columnText(cat, 1)).toBe("—");
    const val = decodeColumn({ key: "v", title: "v", kind: "value", dtype: "float32" }, new Float32Array([0.123456, 1234]), 2);
    expect(columnText(val, 0)).toBe("0.123");
    expect(columnText(val, 1)).toBe("1234");
  });
});
