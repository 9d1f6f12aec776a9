// Preloaded with `node --require` in front of Portkey's build/start-server.js, which calls
// serve({fetch, port}) with no hostname (so it would listen on every interface). This forces
// every listen() in the process onto 127.0.0.1; the benchmark uses loopback only.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args.length && typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0])) {
    args[0] = { ...args[0], host: '127.0.0.1' };
  } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const port = Number(args[0]);
    const rest = args.slice(1).filter((a) => typeof a === 'function');
    return listen.call(this, { port, host: '127.0.0.1' }, ...rest);
  }
  return listen.apply(this, args);
};
