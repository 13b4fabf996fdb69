// Runs each Exotel client library from npm, unchanged, against Exotel's
// hosts (which hosts.js resolves to the sandbox) and prints one JSON line
// of what each answered. Usage: node -r ./hosts.js clients.js ACCOUNT_SID
'use strict';
const sid = process.argv[2];
const token = 'a_token_the_gateway_ignores';
const results = {};

function step(name, fn) {
  return new Promise((resolve, reject) => {
    fn((err, res) => {
      if (err) {
        reject(new Error(name + ': ' + (err.message || err)));
        return;
      }
      results[name] = res;
      resolve(res);
    });
  });
}

async function exotelNode() {
  const exotel = require('exotel-node');
  exotel.init(sid, token, '08039591000');
  const call = await step('exotel-node.connectCall', (cb) => exotel.connectCall('09876543210', '08012345670', cb));
  await step('exotel-node.getCallDetails', (cb) => exotel.getCallDetails(call.Sid, cb));
  await step('exotel-node.sendSMS', (cb) => exotel.sendSMS('08012345670', 'hello from exotel-node', cb));
}

async function exotelPkg() {
  const exotel = require('exotel')({ id: sid, token: token });
  const sms = await step('exotel.sendSMS', (cb) => exotel.sendSMS('08012345671', 'hello from exotel', cb));
  await step('exotel.checkSMS', (cb) => exotel.checkSMS(sms.Sid, cb));
  await step('exotel.sendSMS.rejected', (cb) => exotel.sendSMS('', 'no recipient', (err) => cb(null, err ? err.message : null)));
}

exotelNode()
  .then(exotelPkg)
  .then(() => {
    process.stdout.write(JSON.stringify(results) + '\n');
  })
  .catch((err) => {
    process.stderr.write(err.stack + '\n');
    process.exit(1);
  });
