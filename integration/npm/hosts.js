// Preloaded with `node -r ./hosts.js`: resolves Exotel's host names to
// 127.0.0.1, as the hosts-file line
//
//   127.0.0.1 api.exotel.com api.in.exotel.com ccm-api.exotel.com ccm-api.in.exotel.com twilix.exotel.com twilix.exotel.in
//
// does for every program on the machine. When EXOGATE_TLS_PORT is set,
// connections to those names on port 443 go to that port instead, so the
// sandbox's HTTPS listener need not hold port 443.
'use strict';
const dns = require('dns');
const tls = require('tls');

const hosts = new Set([
  'api.exotel.com', 'api.in.exotel.com',
  'ccm-api.exotel.com', 'ccm-api.in.exotel.com',
  'twilix.exotel.com', 'twilix.exotel.in',
]);

const lookup = dns.lookup;
dns.lookup = function (hostname, options, callback) {
  if (!hosts.has(String(hostname).toLowerCase())) {
    return lookup.apply(this, arguments);
  }
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  if (typeof options === 'number') {
    options = { family: options };
  }
  const answer = { address: '127.0.0.1', family: 4 };
  process.nextTick(() => {
    if (options && options.all) {
      callback(null, [answer]);
    } else {
      callback(null, answer.address, answer.family);
    }
  });
};

const port = process.env.EXOGATE_TLS_PORT;
if (port) {
  const connect = tls.connect;
  tls.connect = function (...args) {
    const o = args.find((a) => a && typeof a === 'object');
    if (o && hosts.has(String(o.host || o.servername).toLowerCase()) && Number(o.port || 443) === 443) {
      o.port = Number(port);
    }
    return connect.apply(this, args);
  };
}
