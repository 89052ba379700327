// A minimal broadcast server on the `ws` package: the baseline that herald-bench measures
// next to Herald's gateway (docs/benchmarks.md). It speaks only what herald-bench sends:
// `connect` and `subscribe` get a reply, `publish` gets a reply and its publication is sent
// to every subscriber of the channel, one `ws.send` per subscriber, as a typical Node
// broadcast loop does. No auth, history or presence.
//
//   node server.js [port]        (default 8090, listens on 127.0.0.1)
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || process.env.PORT || 8090);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const channels = new Map(); // channel -> Set of sockets
let nextClient = 1;
const offsets = new Map(); // channel -> last offset

wss.on('connection', (socket) => {
  const subs = new Set();
  socket.on('message', (raw) => {
    for (const line of raw.toString().split('\n')) {
      if (line === '' || line === '{}') continue;
      let command;
      try {
        command = JSON.parse(line);
      } catch {
        socket.close(3501, 'bad request');
        return;
      }
      const id = command.id;
      if (command.connect) {
        socket.send(JSON.stringify({ id, connect: { client: String(nextClient++), version: 'node-baseline' } }));
      } else if (command.subscribe) {
        const channel = command.subscribe.channel;
        if (!channels.has(channel)) channels.set(channel, new Set());
        channels.get(channel).add(socket);
        subs.add(channel);
        socket.send(JSON.stringify({ id, subscribe: {} }));
      } else if (command.publish) {
        const { channel, data } = command.publish;
        const offset = (offsets.get(channel) || 0) + 1;
        offsets.set(channel, offset);
        const push = JSON.stringify({ push: { channel, pub: { data, offset } } });
        for (const member of channels.get(channel) || []) member.send(push);
        socket.send(JSON.stringify({ id, publish: {} }));
      } else if (id) {
        socket.send(JSON.stringify({ id, error: { code: 104, message: 'method not found' } }));
      }
    }
  });
  socket.on('close', () => {
    for (const channel of subs) {
      const members = channels.get(channel);
      if (!members) continue;
      members.delete(socket);
      if (members.size === 0) channels.delete(channel);
    }
  });
});

wss.on('listening', () => console.log(`node-baseline listening on 127.0.0.1:${port} (pid ${process.pid})`));
