#!/usr/bin/env python3
"""Cross-node live latency probe (Scripts/stress.sh --nodes).

    live-probe.py WRITE_PORT READ_PORT TOKEN NAMESPACE COUNT [INTERVAL_S]

Opens two live WebSockets on NAMESPACE (JSON framing): one on the node that takes the writes
(WRITE_PORT, "same node") and one on another node (READ_PORT, "cross node"). Then pushes COUNT
one-change batches through WRITE_PORT's REST API, one every INTERVAL_S, and times, for each
acknowledged write, from just before the push was sent to the moment each socket received a
`changes` page whose head reaches the write's seq (write-to-live-delivery, the push's own commit
included). One line per write on stdout: `same_ms cross_ms`. A write whose push failed, or whose
page did not arrive within 10 s on either socket (a node killed meanwhile), is left out and
counted on stderr: the probe measures delivery, the simulators measure loss.
"""
import asyncio, base64, json, os, struct, sys, time, uuid


class LiveSocket:
    def __init__(self, port, token, namespace):
        self.port, self.token, self.namespace = port, token, namespace
        self.arrivals = []  # (head, monotonic time), in arrival order
        self.changed = asyncio.Event()

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write((f"GET /v1/ns/{self.namespace}/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Authorization: Bearer {self.token}\r\n\r\n").encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"no WebSocket upgrade on port {self.port}: {head[:100]!r}")
        self.send(0x1, json.dumps({"type": "hello", "cursor": 0}).encode())
        opcode, payload = await self.frame()
        message = json.loads(payload)
        if message.get("type") != "welcome":
            raise RuntimeError(f"expected welcome on port {self.port}, got {payload[:200]!r}")
        self.task = asyncio.ensure_future(self.read())

    def send(self, opcode, payload):
        mask = os.urandom(4)
        length = len(payload)
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", length)
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def frame(self):
        """One whole message (continuation frames joined); answers pings."""
        message, first = b"", None
        while True:
            b0, b1 = await self.reader.readexactly(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError(f"closed by the node on port {self.port}")
            if opcode == 0xA:
                continue
            if first is None:
                first = opcode
            message += payload
            if b0 & 0x80:
                return first, message

    async def read(self):
        try:
            while True:
                _, payload = await self.frame()
                message = json.loads(payload)
                if message.get("type") == "changes":
                    self.arrivals.append((message["head"], time.monotonic()))
                    self.changed.set()
        except Exception:
            self.changed.set()

    async def delivered(self, seq, deadline):
        while time.monotonic() < deadline:
            for head, at in self.arrivals:
                if head >= seq:
                    return at
            if self.task.done():
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                return None
        return None

    def close(self):
        self.task.cancel()
        self.writer.close()


async def push(port, token, namespace, number):
    now = int(time.time() * 1000)
    batch = {"changes": [{"base": 0, "collection": "probe", "fields": {"n": number}, "hlc": f"{now}.0@00000000000000b1",
                          "id": str(uuid.uuid4()), "mode": "lww", "op": "upsert", "record": f"p-{number}"}]}
    body = json.dumps(batch).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"POST /v1/ns/{namespace}/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Accept: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n"
                  f"Connection: close\r\n\r\n").encode() + body)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, text = answer.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace"))
    if b"chunked" in head.lower():
        chunks, rest = b"", text
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            size = int(size, 16)
            if size == 0:
                break
            chunks, rest = chunks + rest[:size], rest[size + 2:]
        text = chunks
    return json.loads(text)["results"][0]["seq"]


async def main():
    write_port, read_port, token, namespace, count = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
    same, cross = LiveSocket(write_port, token, namespace), LiveSocket(read_port, token, namespace)
    await same.open()
    await cross.open()
    skipped = 0
    try:
        for number in range(count):
            started = time.monotonic()
            try:
                seq = await push(write_port, token, namespace, number)
            except Exception as error:
                skipped += 1
                print(f"probe: push failed: {error}", file=sys.stderr)
                await asyncio.sleep(interval)
                continue
            deadline = started + 10
            at_same, at_cross = await same.delivered(seq, deadline), await cross.delivered(seq, deadline)
            if at_same is None or at_cross is None:
                skipped += 1
                if same.task.done() or cross.task.done():
                    break  # a node went away: this burst ends
            else:
                print(f"{(at_same - started) * 1000:.2f} {(at_cross - started) * 1000:.2f}", flush=True)
            await asyncio.sleep(interval)
    finally:
        same.close()
        cross.close()
    if skipped:
        print(f"probe: {skipped} writes without a measured delivery", file=sys.stderr)


asyncio.run(main())
