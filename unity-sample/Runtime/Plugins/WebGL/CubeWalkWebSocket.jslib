// The browser's WebSocket for CubeWalk's managed realtime follower (Runtime/ManagedWebSocket.cs,
// BrowserWebSocketBridge), called from C# through [DllImport("__Internal")]. Polled, never
// calling back into managed code: received frames wait here until CubeWalkWebSocket_Receive
// copies them into the managed buffer the C# side hands it, once per frame.
//
// States: 0 connecting, 1 open, 2 closed after it had opened, 3 closed without ever opening (a
// browser never says why: refused and unreachable look the same), 4 closed because more than
// maxUnread bytes waited unread. Unknown ids answer -1.
var CubeWalkWebSocketLibrary = {
  $cwSockets: {
    next: 1,
    open: {},
    maxUnread: 4 * 1024 * 1024
  },

  CubeWalkWebSocket_Open: function (url) {
    var id = cwSockets.next++;
    var s = { ws: null, state: 0, code: 0, frames: [], offset: 0, unread: 0 };
    try {
      s.ws = new WebSocket(UTF8ToString(url), 'mqtt');
    } catch (e) {
      // A URL the browser refuses outright (mixed content, bad syntax).
      return 0;
    }
    s.ws.binaryType = 'arraybuffer';
    s.ws.onopen = function () {
      if (s.state === 0) s.state = 1;
    };
    s.ws.onmessage = function (event) {
      // Text frames are not MQTT: ignored.
      if (!(event.data instanceof ArrayBuffer) || s.state !== 1) return;
      var bytes = new Uint8Array(event.data);
      if (bytes.length === 0) return;
      if (s.unread + bytes.length > cwSockets.maxUnread) {
        s.state = 4;
        s.frames = [];
        s.offset = 0;
        s.unread = 0;
        try { s.ws.close(1009); } catch (e) { }
        return;
      }
      s.frames.push(bytes);
      s.unread += bytes.length;
    };
    s.ws.onerror = function () {
      // onclose follows and says the rest.
    };
    s.ws.onclose = function (event) {
      s.code = event.code;
      if (s.state === 0) s.state = 3;
      else if (s.state === 1) s.state = 2;
    };
    cwSockets.open[id] = s;
    return id;
  },

  CubeWalkWebSocket_State: function (id) {
    var s = cwSockets.open[id];
    return s ? s.state : -1;
  },

  CubeWalkWebSocket_CloseCode: function (id) {
    var s = cwSockets.open[id];
    return s ? s.code : 0;
  },

  // Sends `length` bytes at `data` as one binary frame: 1 when sent, 0 when not open.
  CubeWalkWebSocket_Send: function (id, data, length) {
    var s = cwSockets.open[id];
    if (!s || s.state !== 1 || s.ws.readyState !== 1) return 0;
    try {
      // A copy: the heap may be shared or grow, and the frame must not change once queued.
      s.ws.send(HEAPU8.slice(data, data + length));
      return 1;
    } catch (e) {
      return 0;
    }
  },

  // Copies up to `capacity` received bytes to `buffer`; how many (frames are one byte stream).
  CubeWalkWebSocket_Receive: function (id, buffer, capacity) {
    var s = cwSockets.open[id];
    if (!s) return 0;
    var copied = 0;
    while (copied < capacity && s.frames.length > 0) {
      var frame = s.frames[0];
      var n = Math.min(capacity - copied, frame.length - s.offset);
      HEAPU8.set(frame.subarray(s.offset, s.offset + n), buffer + copied);
      copied += n;
      s.offset += n;
      if (s.offset === frame.length) {
        s.frames.shift();
        s.offset = 0;
      }
    }
    s.unread -= copied;
    return copied;
  },

  // Closes (what was sent goes out first) and forgets the socket: later events are ignored.
  CubeWalkWebSocket_Close: function (id) {
    var s = cwSockets.open[id];
    if (!s) return;
    delete cwSockets.open[id];
    s.frames = [];
    s.ws.onopen = s.ws.onmessage = s.ws.onerror = s.ws.onclose = null;
    try { s.ws.close(1000); } catch (e) { }
  }
};

autoAddDeps(CubeWalkWebSocketLibrary, '$cwSockets');
mergeInto(LibraryManager.library, CubeWalkWebSocketLibrary);
