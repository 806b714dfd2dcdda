// Baseline server for the wsnotify benchmarks: Node `ws` with no auth and compression off.
// Why: the issue compares wsnotify against the common Node WebSocket server, measured in the
// same run on the same machine, so only the ratios matter.
//
// Usage: node node_ws_server.js PORT
//   GET /ws           WebSocket upgrade; the server keeps the connection idle.
//   POST /broadcast   body = the payload; sent as one text frame to every open client, then
//                     answered with the number of clients (lets the fan-out be compared too).
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node node_ws_server.js PORT');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/broadcast') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const payload = Buffer.concat(chunks).toString('utf8');
      let n = 0;
      for (const client of wss.clients) {
        client.send(payload);
        n += 1;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(String(n));
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('error', () => {});
});

server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${port}`);
});

function stop() {
  for (const client of wss.clients) client.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
