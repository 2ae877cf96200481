// Parley's original design as a plain Node server: the baseline that the
// Rust server is benchmarked against (see ../../README.md). It is kept the
// way a Node developer would normally write it: one HTTP server for the page
// and the WebSocket, JSON {type, payload} frames, and a broadcast that
// serializes each message once and sends it to every other open socket.
//
//   PORT=3200 node server.js
'use strict';

const http = require('node:http');
const { WebSocketServer, WebSocket } = require('ws');

const PORT = Number(process.env.PORT) || 3200;
const HOST = '127.0.0.1';

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Parley (Node)</title>
<form id="nick"><input name="nickname" placeholder="Nickname"><button>Set</button></form>
<ul id="log"></ul>
<form id="say"><input name="text" placeholder="Message" autocomplete="off"><button>Send</button></form>
<script>
  const socket = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
  const log = document.getElementById('log');
  const show = (nickname, text) => {
    const item = document.createElement('li');
    item.textContent = nickname + ': ' + text;
    log.append(item);
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'message') show(frame.payload.nickname, frame.payload.text);
  };
  const send = (type, payload) => socket.send(JSON.stringify({ type, payload }));
  document.getElementById('nick').onsubmit = (event) => {
    event.preventDefault();
    send('nickname', event.target.nickname.value);
  };
  document.getElementById('say').onsubmit = (event) => {
    event.preventDefault();
    send('message', event.target.text.value);
    show('me', event.target.text.value);
    event.target.reset();
  };
</script>
`;

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('Not found');
  }
});

// Accepts WebSocket upgrades on any path of the same port, /ws included.
const wss = new WebSocketServer({ server });

wss.on('connection', (socket) => {
  socket.nickname = 'Anonymous';

  socket.on('message', (data) => {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === 'nickname') {
      socket.nickname = String(frame.payload);
    } else if (frame.type === 'message') {
      const out = JSON.stringify({
        type: 'message',
        payload: { nickname: socket.nickname, text: frame.payload },
      });
      for (const client of wss.clients) {
        if (client !== socket && client.readyState === WebSocket.OPEN) {
          client.send(out);
        }
      }
    }
  });
});

server.listen(PORT, HOST, () => {
  console.log(`Parley (Node) listening on http://${HOST}:${PORT}`);
});
