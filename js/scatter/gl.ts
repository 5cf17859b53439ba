// A small WebGL point renderer for the population scatter: gl.POINTS with per-point position
// (two layouts and a morph factor), RGBA colour and a flag (0 plain, 1 selected, 2 similar,
// 3 viewed). Flagged points are drawn larger, ringed and on top (depth test).

const VS = `
attribute vec2 a_from;
attribute vec2 a_to;
attribute vec4 a_color;
attribute float a_flag;
uniform float u_t;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_size;
uniform mediump float u_dpr;
varying vec4 v_color;
varying float v_flag;
varying float v_size;
void main() {
  vec2 p = mix(a_from, a_to, u_t);
  float z = 0.6;
  float s = u_size;
  if (a_flag > 2.5) { z = 0.0; s = u_size * 1.4 + 9.0 * u_dpr; }
  else if (a_flag > 1.5) { z = 0.2; s = u_size * 1.2 + 6.0 * u_dpr; }
  else if (a_flag > 0.5) { z = 0.4; s = u_size * 1.2 + 5.0 * u_dpr; }
  gl_Position = vec4((p - u_center) * u_scale, z, 1.0);
  gl_PointSize = s;
  v_color = a_color;
  v_flag = a_flag;
  v_size = s;
}`;

const FS = `
precision mediump float;
varying vec4 v_color;
varying float v_flag;
varying float v_size;
uniform float u_dpr;
uniform vec3 u_ring;
uniform vec3 u_similar;
uniform vec3 u_viewed;
void main() {
  vec2 q = gl_PointCoord * 2.0 - 1.0;
  float r = length(q);
  if (r > 1.0) discard;
  float px = 2.0 / v_size; // one device pixel in these units
  if (v_flag < 0.5) {
    float a = clamp((1.0 - r) / px, 0.0, 1.0) * 0.9;
    gl_FragColor = vec4(v_color.rgb * a, a); // premultiplied: the canvas is transparent
    return;
  }
  float ring = (v_flag > 2.5 ? 2.5 : 2.0) * u_dpr * px;
  vec3 rc = v_flag > 2.5 ? u_viewed : (v_flag > 1.5 ? u_similar : u_ring);
  vec3 c = r > 1.0 - ring ? rc : v_color.rgb;
  if (v_flag > 2.5 && r <= 1.0 - ring && r > 1.0 - ring - 1.5 * u_dpr * px) c = vec3(1.0);
  float a = clamp((1.0 - r) / px, 0.0, 1.0);
  gl_FragColor = vec4(c * a, a);
}`;

export interface View {
  cx: number; // view centre in layout units
  cy: number;
  zoom: number; // 1: the layout [-1, 1] fits the canvas
}

function compile(gl: WebGLRenderingContext, type: number, src: string): WebGLShader {
  const s = gl.createShader(type)!;
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(s)}`);
  return s;
}

export class PointRenderer {
  readonly gl: WebGLRenderingContext;
  private prog: WebGLProgram;
  private buf: Record<"from" | "to" | "color" | "flag", WebGLBuffer>;
  private loc: Record<string, any> = {};
  n = 0;
  t = 1;
  pointSize = 5; // CSS pixels
  ring: [number, number, number] = [0.12, 0.14, 0.16];
  similar: [number, number, number] = [0.94, 0.55, 0.0];
  viewed: [number, number, number] = [0.05, 0.05, 0.08];
  draws = 0;

  constructor(readonly canvas: HTMLCanvasElement) {
    const gl = canvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true, alpha: true, premultipliedAlpha: true });
    if (!gl) throw new Error("WebGL is not available in this browser");
    this.gl = gl;
    const p = gl.createProgram()!;
    gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`program: ${gl.getProgramInfoLog(p)}`);
    this.prog = p;
    this.buf = { from: gl.createBuffer()!, to: gl.createBuffer()!, color: gl.createBuffer()!, flag: gl.createBuffer()! };
    for (const a of ["a_from", "a_to", "a_color", "a_flag"]) this.loc[a] = gl.getAttribLocation(p, a);
    for (const u of ["u_t", "u_center", "u_scale", "u_size", "u_dpr", "u_ring", "u_similar", "u_viewed"]) {
      this.loc[u] = gl.getUniformLocation(p, u);
    }
  }

  private upload(name: "from" | "to" | "color" | "flag", data: ArrayBufferView): void {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf[name]);
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.DYNAMIC_DRAW);
  }
  /** Positions (normalised layouts); `from` = `to` when there is nothing to morph. */
  setPositions(from: Float32Array, to: Float32Array): void {
    this.n = to.length >> 1;
    this.upload("from", from);
    this.upload("to", to);
  }
  setColors(rgba: Uint8Array): void {
    this.upload("color", rgba);
  }
  setFlags(flags: Uint8Array): void {
    this.upload("flag", flags);
  }

  /** Device-pixel size of the canvas (CSS size x devicePixelRatio). */
  resize(cssW: number, cssH: number, dpr: number): void {
    const w = Math.max(1, Math.round(cssW * dpr)), h = Math.max(1, Math.round(cssH * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  /** Layout units -> device pixels per unit at this view (x and y are the same). */
  static pxPerUnit(view: View, w: number, h: number): number {
    return (Math.min(w, h) / 2) * 0.92 * view.zoom;
  }

  draw(view: View, dpr: number): void {
    const gl = this.gl;
    const w = this.canvas.width, h = this.canvas.height;
    gl.viewport(0, 0, w, h);
    gl.clearColor(0, 0, 0, 0); // transparent: the stage's (theme) background shows through
    gl.clearDepth(1);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    this.draws++;
    if (!this.n) return;
    gl.useProgram(this.prog);
    gl.enable(gl.DEPTH_TEST);
    gl.depthFunc(gl.LEQUAL);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    const ppu = PointRenderer.pxPerUnit(view, w, h);
    gl.uniform1f(this.loc.u_t, this.t);
    gl.uniform2f(this.loc.u_center, view.cx, view.cy);
    gl.uniform2f(this.loc.u_scale, (ppu * 2) / w, (ppu * 2) / h);
    const grow = Math.min(3, Math.max(1, Math.sqrt(view.zoom)));
    gl.uniform1f(this.loc.u_size, this.pointSize * dpr * grow);
    gl.uniform1f(this.loc.u_dpr, dpr);
    gl.uniform3fv(this.loc.u_ring, this.ring);
    gl.uniform3fv(this.loc.u_similar, this.similar);
    gl.uniform3fv(this.loc.u_viewed, this.viewed);
    const attr = (name: "from" | "to" | "color" | "flag", a: string, size: number, type: number, norm: boolean) => {
      gl.bindBuffer(gl.ARRAY_BUFFER, this.buf[name]);
      gl.enableVertexAttribArray(this.loc[a]);
      gl.vertexAttribPointer(this.loc[a], size, type, norm, 0, 0);
    };
    attr("from", "a_from", 2, gl.FLOAT, false);
    attr("to", "a_to", 2, gl.FLOAT, false);
    attr("color", "a_color", 4, gl.UNSIGNED_BYTE, true);
    attr("flag", "a_flag", 1, gl.UNSIGNED_BYTE, false);
    gl.drawArrays(gl.POINTS, 0, this.n);
  }
}
