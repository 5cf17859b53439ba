// The slice of the anywidget model API that the front end uses (also what test pages fake).
export interface AnyModel {
  get(name: string): any;
  set(name: string, value: any): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: any, callbacks?: any, buffers?: (ArrayBuffer | ArrayBufferView)[]): void;
}
