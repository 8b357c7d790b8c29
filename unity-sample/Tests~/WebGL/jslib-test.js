// The jslib of the browser WebSocket bridge (Runtime/Plugins/WebGL/CubeWalkWebSocket.jslib) run
// under node against a stand-in of the browser's WebSocket and of what Emscripten gives a jslib
// (mergeInto, autoAddDeps, HEAPU8, UTF8ToString): opened with subprotocol "mqtt" and binaryType
// arraybuffer, frames copied into the heap as one byte stream across partial reads, text frames
// ignored, sends copied, states and close codes, the unread bound, a closed socket forgotten.
// Run by run-tests.sh: node WebGL/jslib-test.js <jslib>.
'use strict';
const fs = require('fs');
const vm = require('vm');
const assert = require('assert');

const sockets = [];
class FakeWebSocket {
  constructor(url, protocol) {
    if (url.startsWith('bad:')) throw new SyntaxError('bad url');
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    sockets.push(this);
  }
  send(data) {
    // The browser copies (or keeps) what it is given: keep it and check it was a copy.
    this.sent.push(data);
  }
  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }
  // Test side: what the network does.
  open() { this.readyState = 1; this.onopen && this.onopen({}); }
  binary(bytes) { this.onmessage && this.onmessage({ data: Uint8Array.from(bytes).buffer }); }
  text(s) { this.onmessage && this.onmessage({ data: s }); }
  closed(code) { this.readyState = 3; this.onclose && this.onclose({ code }); }
}

const HEAPU8 = new Uint8Array(1 << 16);
function UTF8ToString(ptr) {
  let end = ptr;
  while (HEAPU8[end] !== 0) end++;
  return Buffer.from(HEAPU8.subarray(ptr, end)).toString('utf8');
}
function writeString(ptr, s) {
  const b = Buffer.from(s, 'utf8');
  HEAPU8.set(b, ptr);
  HEAPU8[ptr + b.length] = 0;
}

const library = {};
const context = {
  WebSocket: FakeWebSocket,
  ArrayBuffer, Uint8Array, Math,
  HEAPU8, UTF8ToString,
  LibraryManager: { library },
  mergeInto: (target, source) => Object.assign(target, source),
  autoAddDeps: (lib, name) => {
    for (const key of Object.keys(lib))
      if (!key.endsWith('__deps')) (lib[key + '__deps'] = lib[key + '__deps'] || []).push(name);
  },
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[2], 'utf8'), context);
// Emscripten makes `$name` library entries globals named `name` for the functions using them.
context.cwSockets = library.$cwSockets;
for (const name of Object.keys(library))
  if (typeof library[name] === 'function') context[name] = vm.runInContext('(' + library[name].toString() + ')', context);
const js = context;

let checks = 0;
function check(what, f) { f(); checks++; console.log('ok: ' + what); }

check('every function the C# bridge imports is there, each depending on the socket table', () => {
  for (const f of ['Open', 'State', 'CloseCode', 'Send', 'Receive', 'Close']) {
    assert.strictEqual(typeof library['CubeWalkWebSocket_' + f], 'function', f);
    assert.ok(library['CubeWalkWebSocket_' + f + '__deps'].includes('$cwSockets'), f);
  }
});

writeString(100, 'wss://example.test/mqtt?token=a%2Bb');
const id = js.CubeWalkWebSocket_Open(100);
const ws = sockets[0];
check('opens the URL with subprotocol mqtt and binaryType arraybuffer', () => {
  assert.ok(id > 0);
  assert.strictEqual(ws.url, 'wss://example.test/mqtt?token=a%2Bb');
  assert.strictEqual(ws.protocol, 'mqtt');
  assert.strictEqual(ws.binaryType, 'arraybuffer');
  assert.strictEqual(js.CubeWalkWebSocket_State(id), 0);
  assert.strictEqual(js.CubeWalkWebSocket_Send(id, 0, 2), 0, 'nothing is sent before it opens');
});

check('open: state 1; a send copies the bytes out of the heap', () => {
  ws.open();
  assert.strictEqual(js.CubeWalkWebSocket_State(id), 1);
  HEAPU8.set([0xc0, 0x00], 200);
  assert.strictEqual(js.CubeWalkWebSocket_Send(id, 200, 2), 1);
  HEAPU8[200] = 0xff;
  assert.deepStrictEqual(Array.from(ws.sent[0]), [0xc0, 0x00]);
  assert.notStrictEqual(ws.sent[0].buffer, HEAPU8.buffer, 'a copy, not a view of the heap');
});

check('frames come out as one byte stream, across partial reads; text frames are ignored', () => {
  ws.binary([1, 2, 3]);
  ws.text('not mqtt');
  ws.binary([4, 5]);
  ws.binary([]);
  ws.binary([6]);
  HEAPU8.fill(0, 300, 320);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 300, 2), 2);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 302, 3), 3);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 305, 10), 1);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 306, 10), 0);
  assert.deepStrictEqual(Array.from(HEAPU8.subarray(300, 307)), [1, 2, 3, 4, 5, 6, 0]);
});

check('closed by the server after opening: state 2 with its close code; unread bytes still readable', () => {
  ws.binary([7, 8]);
  ws.closed(1001);
  assert.strictEqual(js.CubeWalkWebSocket_State(id), 2);
  assert.strictEqual(js.CubeWalkWebSocket_CloseCode(id), 1001);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 400, 10), 2);
  assert.strictEqual(js.CubeWalkWebSocket_Send(id, 200, 2), 0);
});

check('close forgets the socket: later events are ignored, unknown ids answer -1', () => {
  js.CubeWalkWebSocket_Close(id);
  assert.strictEqual(ws.closedWith, 1000);
  assert.strictEqual(js.CubeWalkWebSocket_State(id), -1);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(id, 400, 10), 0);
  assert.strictEqual(ws.onmessage, null);
  js.CubeWalkWebSocket_Close(id); // twice is harmless
});

check('a socket that closes without ever opening is state 3 (the browser does not say why)', () => {
  writeString(100, 'ws://127.0.0.1:9/mqtt?token=x');
  const failed = js.CubeWalkWebSocket_Open(100);
  sockets[sockets.length - 1].closed(1006);
  assert.strictEqual(js.CubeWalkWebSocket_State(failed), 3);
  assert.strictEqual(js.CubeWalkWebSocket_CloseCode(failed), 1006);
  js.CubeWalkWebSocket_Close(failed);
});

check('a URL the browser refuses outright: id 0', () => {
  writeString(100, 'bad:url');
  assert.strictEqual(js.CubeWalkWebSocket_Open(100), 0);
});

check('more than maxUnread bytes waiting: closed (state 4, 1009), nothing kept', () => {
  writeString(100, 'ws://127.0.0.1/mqtt?token=x');
  const big = js.CubeWalkWebSocket_Open(100);
  const s = sockets[sockets.length - 1];
  s.open();
  const saved = js.cwSockets.maxUnread;
  js.cwSockets.maxUnread = 10;
  s.binary([1, 2, 3, 4, 5, 6]);
  s.binary([7, 8, 9, 10, 11]);
  js.cwSockets.maxUnread = saved;
  assert.strictEqual(js.CubeWalkWebSocket_State(big), 4);
  assert.strictEqual(s.closedWith, 1009);
  assert.strictEqual(js.CubeWalkWebSocket_Receive(big, 500, 100), 0);
  js.CubeWalkWebSocket_Close(big);
});

console.log('jslib: ' + checks + ' checks passed');
