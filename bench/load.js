#!/usr/bin/env node
// WebSocket helpers for bench/run (node stdlib only): a minimal RFC 6455
// echo server and the two clients.
//
//   node load.js server PORT
//       echo server on 127.0.0.1:PORT: every data frame comes back unmasked
//       with the same opcode; ping -> pong; close -> close.
//   node load.js echo HOST:PORT PATH CONNS SECONDS MSG_BYTES
//       CONNS connections, each ping-pongs one MSG_BYTES text message at a
//       time for SECONDS; prints one JSON line {messages, seconds, ...}.
//   node load.js hold HOST:PORT PATH N
//       opens N idle connections (at most 200 handshakes in flight), prints
//       "ready N" (or "failed K ...") and keeps them until stdin closes or
//       SIGTERM, then exits.
//
// Client frames are masked as the RFC requires; the key is random per
// connection and the masked frame is precomputed once (the payload is
// constant), so the client spends its CPU on sockets, not on XOR.
'use strict';
const net = require('net');
const http = require('http');
const crypto = require('crypto');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(opcode, payload, maskKey) {
  const len = payload.length;
  let hdrLen = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (maskKey ? 4 : 0);
  const buf = Buffer.allocUnsafe(hdrLen + len);
  buf[0] = 0x80 | opcode;
  let off = 2;
  if (len < 126) buf[1] = len;
  else if (len < 65536) { buf[1] = 126; buf.writeUInt16BE(len, 2); off = 4; }
  else { buf[1] = 127; buf.writeBigUInt64BE(BigInt(len), 2); off = 10; }
  if (maskKey) {
    buf[1] |= 0x80;
    maskKey.copy(buf, off); off += 4;
    for (let i = 0; i < len; i++) buf[off + i] = payload[i] ^ maskKey[i & 3];
  } else {
    payload.copy(buf, off);
  }
  return buf;
}

// Parses as many complete frames as `buf` holds; calls onFrame(fin, opcode,
// payload) with the payload unmasked; returns the unconsumed rest.
function parseFrames(buf, onFrame) {
  let pos = 0;
  while (buf.length - pos >= 2) {
    const b0 = buf[pos], b1 = buf[pos + 1];
    let len = b1 & 0x7f, off = pos + 2;
    if (len === 126) { if (buf.length - pos < 4) break; len = buf.readUInt16BE(pos + 2); off = pos + 4; }
    else if (len === 127) { if (buf.length - pos < 10) break; len = Number(buf.readBigUInt64BE(pos + 2)); off = pos + 10; }
    const masked = (b1 & 0x80) !== 0;
    const need = off + (masked ? 4 : 0) + len;
    if (buf.length < need) break;
    let payload;
    if (masked) {
      const k0 = buf[off], k1 = buf[off + 1], k2 = buf[off + 2], k3 = buf[off + 3];
      payload = Buffer.allocUnsafe(len);
      const s = off + 4;
      for (let i = 0; i < len; i++) {
        const k = (i & 3) === 0 ? k0 : (i & 3) === 1 ? k1 : (i & 3) === 2 ? k2 : k3;
        payload[i] = buf[s + i] ^ k;
      }
    } else {
      payload = buf.subarray(off, off + len);
    }
    onFrame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
    pos = need;
  }
  return pos === 0 ? buf : buf.subarray(pos);
}

function server(port) {
  const srv = http.createServer((req, res) => { res.writeHead(426); res.end('websocket only\n'); });
  srv.on('upgrade', (req, sock, head) => {
    const key = req.headers['sec-websocket-key'];
    if (!key || (req.headers.upgrade || '').toLowerCase() !== 'websocket') { sock.destroy(); return; }
    const accept = crypto.createHash('sha1').update(key + GUID).digest('base64');
    sock.setNoDelay(true);
    sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               'Sec-WebSocket-Accept: ' + accept + '\r\n\r\n');
    let pending = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
    const onData = (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      const out = [];
      let closed = false;
      pending = parseFrames(pending, (fin, op, payload) => {
        if (op === 0x8) { out.push(frame(0x8, payload.subarray(0, 2))); closed = true; }
        else if (op === 0x9) out.push(frame(0xA, payload));
        else if (op === 0xA) { /* pong: ignore */ }
        else out.push(fin ? frame(op, payload) : (() => { const f = frame(op, payload); f[0] &= 0x7f; return f; })());
      });
      if (out.length) sock.write(out.length === 1 ? out[0] : Buffer.concat(out));
      if (closed) sock.end();
    };
    sock.on('data', onData);
    sock.on('error', () => {});
    if (pending.length) { const p = pending; pending = Buffer.alloc(0); onData(p); }
  });
  srv.maxConnections = 100000;
  srv.listen(port, '127.0.0.1', () => process.stdout.write('listening ' + port + '\n'));
}

// Opens one client WebSocket; calls cb(err, sock, leftover).
function connect(hostport, path, cb) {
  const [host, portStr] = hostport.split(':');
  const sock = net.connect({ host, port: Number(portStr) });
  const key = crypto.randomBytes(16).toString('base64');
  let buf = Buffer.alloc(0), done = false;
  const fail = (e) => { if (!done) { done = true; sock.destroy(); cb(e); } };
  sock.setNoDelay(true);
  sock.on('connect', () => {
    sock.write('GET ' + path + ' HTTP/1.1\r\nHost: ' + hostport + '\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
               'Sec-WebSocket-Key: ' + key + '\r\nSec-WebSocket-Version: 13\r\n\r\n');
  });
  const onData = (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) { if (buf.length > 8192) fail(new Error('header too long')); return; }
    const head = buf.subarray(0, end).toString('latin1');
    const want = crypto.createHash('sha1').update(key + GUID).digest('base64');
    if (!/^HTTP\/1\.1 101/.test(head) || head.toLowerCase().indexOf('sec-websocket-accept: ' + want.toLowerCase()) < 0) {
      fail(new Error('bad handshake: ' + head.split('\r\n')[0])); return;
    }
    sock.removeListener('data', onData);
    done = true;
    cb(null, sock, buf.subarray(end + 4));
  };
  sock.on('data', onData);
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('closed during handshake')));
}

function echo(hostport, path, conns, seconds, msgBytes) {
  const payload = Buffer.alloc(msgBytes, 'x');
  let messages = 0, errors = 0, opened = 0, started = false, stopAt = 0, t0 = 0;
  const socks = [];
  const lat = []; // sampled round-trip times in microseconds
  const finish = () => {
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    lat.sort((a, b) => a - b);
    const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : 0);
    process.stdout.write(JSON.stringify({ messages, seconds: secs, msgs_per_s: messages / secs, conns: opened,
      errors, msg_bytes: msgBytes, rtt_p50_us: pct(0.5), rtt_p99_us: pct(0.99) }) + '\n');
    for (const s of socks) s.destroy();
    process.exit(0);
  };
  const startAll = () => {
    started = true;
    t0 = process.hrtime.bigint();
    stopAt = Date.now() + seconds * 1000;
    setTimeout(finish, seconds * 1000);
    for (const s of socks) s.kick();
  };
  let pendingConns = conns;
  for (let i = 0; i < conns; i++) {
    connect(hostport, path, (err, sock, leftover) => {
      pendingConns--;
      if (err) { errors++; process.stderr.write(String(err) + '\n'); }
      else {
        opened++;
        const mframe = frame(0x1, payload, crypto.randomBytes(4));
        const expect = 2 + (msgBytes < 126 ? 0 : msgBytes < 65536 ? 2 : 8) + msgBytes;
        let got = leftover.length, sent = 0n;
        sock.kick = () => { sent = process.hrtime.bigint(); sock.write(mframe); };
        sock.on('data', (chunk) => {
          got += chunk.length;
          while (got >= expect) {
            got -= expect;
            if (!started) continue;
            messages++;
            if ((messages & 63) === 0) lat.push(Number(process.hrtime.bigint() - sent) / 1000);
            if (Date.now() < stopAt) sock.kick();
          }
        });
        sock.on('error', () => { errors++; });
        socks.push(sock);
      }
      if (pendingConns === 0) {
        if (opened === 0) { process.stdout.write(JSON.stringify({ messages: 0, seconds: 0, msgs_per_s: 0, conns: 0, errors }) + '\n'); process.exit(1); }
        startAll();
      }
    });
  }
}

function hold(hostport, path, n) {
  let opened = 0, failed = 0, inflight = 0, next = 0;
  const socks = [];
  let lastErr = '';
  const pump = () => {
    while (inflight < 200 && next < n) {
      next++; inflight++;
      connect(hostport, path, (err, sock) => {
        inflight--;
        if (err) { failed++; lastErr = String(err); } else { opened++; sock.on('error', () => {}); socks.push(sock); }
        if (opened + failed === n) {
          process.stdout.write(failed ? ('failed ' + failed + ' opened ' + opened + ' ' + lastErr + '\n') : ('ready ' + opened + '\n'));
        } else pump();
      });
    }
  };
  pump();
  const bye = () => { for (const s of socks) s.destroy(); process.exit(0); };
  process.stdin.on('end', bye);
  process.stdin.on('close', bye);
  process.stdin.resume();
  process.on('SIGTERM', bye);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') server(Number(args[0]));
else if (mode === 'echo') echo(args[0], args[1], Number(args[2]), Number(args[3]), Number(args[4]));
else if (mode === 'hold') hold(args[0], args[1], Number(args[2]));
else { process.stderr.write('usage: load.js server PORT | echo HOST:PORT PATH CONNS SECONDS BYTES | hold HOST:PORT PATH N\n'); process.exit(2); }
