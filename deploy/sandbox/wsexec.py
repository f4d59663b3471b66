"""pods/exec over WebSocket, as kubectl v1.32 speaks it (remotecommand, subprotocols
v5.channel.k8s.io and v4.channel.k8s.io): one binary message per chunk, its first byte the
channel (0 stdin, 1 stdout, 2 stderr, 3 error/status, 4 resize, 255 close, v5), the last
message on channel 3 a Status saying how the command ended. No TTY (tty=true runs the command
without one), no SPDY: kubectl only falls back to SPDY when the WebSocket upgrade fails.
"""

import base64
import hashlib
import json
import os
import struct
import subprocess
import threading
import time

from apierrors import ApiError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# client-go's WebSocket executor (kubectl v1.32) reads the connection in one goroutine and
# creates its streams in another, both started after the upgrade; a message that arrives for a
# stream it has not created yet is dropped ("Unknown stream id 3, discarding message"), and the
# close that follows fails the exec ("error: closed all streams"). A real API server is never
# that fast (it dials the kubelet, which asks the runtime to start the process); a command that
# ends at once here could answer within a millisecond and, on a loaded machine, lose its exit
# status. So the first frame goes no sooner than this long after the upgrade (the command
# itself starts at once; only its first output waits).
FIRST_FRAME_HOLD = 0.1


def _read_exact(f, n):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(f):
    """(opcode, payload) of the next complete message (continuations joined)."""
    payload, first_op = b"", None
    while True:
        b1, b2 = _read_exact(f, 2)
        fin, op = b1 & 0x80, b1 & 0x0F
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", _read_exact(f, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", _read_exact(f, 8))[0]
        mask = _read_exact(f, 4) if b2 & 0x80 else None
        data = _read_exact(f, n)
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        if op >= 0x8:                     # control frames come whole, between fragments
            return op, data
        if first_op is None:
            first_op = op
        payload += data
        if fin:
            return first_op, payload


def frame(op, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | op, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | op, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | op, 127, n)
    return head + payload


def exit_status(argv, code):
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       "[%s], exit code %d" % (" ".join(argv), code),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def serve(handler, proc, argv, want_stdin, want_stdout, want_stderr):
    """Upgrade the request of `handler` (BaseHTTPRequestHandler) to a WebSocket and run argv
    in the container of `proc` (containers.Process) until it exits."""
    h = handler.headers
    if "websocket" not in (h.get("Upgrade") or "").lower():
        raise ApiError(400, "BadRequest", "Upgrade request required")
    offered = [p.strip() for p in (h.get("Sec-WebSocket-Protocol") or "").split(",")]
    proto = next((p for p in PROTOCOLS if p in offered), None)
    if proto is None:
        raise ApiError(400, "BadRequest", "unable to upgrade connection: none of the offered "
                       "subprotocols %s is supported (want one of %s)" % (offered,
                                                                           list(PROTOCOLS)))
    key = (h.get("Sec-WebSocket-Key") or "").strip().encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", proto)
    handler.end_headers()
    handler.wfile.flush()
    handler.status_code = 101
    handler.close_connection = True
    wlock = threading.Lock()
    hold_until = [time.monotonic() + FIRST_FRAME_HOLD]

    def send(op, payload):
        with wlock:
            if hold_until[0]:
                time.sleep(max(0.0, hold_until[0] - time.monotonic()))
                hold_until[0] = 0.0
            try:
                handler.wfile.write(frame(op, payload))
                handler.wfile.flush()
            except OSError:
                pass

    a = ["/usr/bin/nsenter", "-t", str(proc.pid), "-m", "-u", "-i", "-p", "-r", "-w", "--"] + \
        list(argv)
    try:
        p = subprocess.Popen(a, env=proc.spec.env,
                             stdin=subprocess.PIPE if want_stdin else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        send(0x2, bytes([ERROR]) + json.dumps({
            "metadata": {}, "status": "Failure", "message": str(e),
            "reason": "InternalError"}).encode())
        send(0x8, struct.pack("!H", 1000))
        return

    def pump(stream, channel, wanted):
        while True:
            data = os.read(stream.fileno(), 32768)
            if not data:
                break
            if wanted:
                send(0x2, bytes([channel]) + data)
    pumps = [threading.Thread(target=pump, args=(p.stdout, STDOUT, want_stdout), daemon=True),
             threading.Thread(target=pump, args=(p.stderr, STDERR, want_stderr), daemon=True)]
    for t in pumps:
        t.start()

    def reader():
        try:
            while True:
                op, data = read_frame(handler.rfile)
                if op == 0x8:
                    break
                if op == 0x9:
                    send(0xA, data)
                    continue
                if op not in (0x1, 0x2) or not data:
                    continue
                ch, body = data[0], data[1:]
                if ch == STDIN and p.stdin is not None and body:
                    try:
                        p.stdin.write(body)
                        p.stdin.flush()
                    except OSError:
                        pass
                elif ch == CLOSE and body[:1] == bytes([STDIN]) and p.stdin is not None:
                    p.stdin.close()
        except (EOFError, OSError, ValueError):
            pass
        finally:
            if p.stdin is not None and not p.stdin.closed:
                try:
                    p.stdin.close()
                except OSError:
                    pass
    threading.Thread(target=reader, daemon=True).start()
    code = p.wait()
    for t in pumps:
        t.join(5)
    send(0x2, bytes([ERROR]) + json.dumps(exit_status(argv, code)).encode())
    send(0x8, struct.pack("!H", 1000))
