import Syncline
import SynclineTesting
import Testing

@Suite("JSON codec")
struct JSONCodecTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func expectMalformed(_ text: String, _ what: Comment, decode: ([UInt8]) throws -> Void) {
        #expect(what) {
            try decode(bytes(text))
        } throws: { error in
            (error as? SyncError)?.code == .malformedInput
        }
    }

    @Test func decodesTheDesignExamples() throws {
        // The push request of DESIGN §5.1, with real ids and HLCs.
        let push = """
            {"changes": [
              {"id": "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d", "collection": "todos", "record": "t1",
               "op": "upsert", "fields": {"title": "Buy milk", "done": false},
               "hlc": "1732300000000.0@9f1c2a7b3d4e5f60", "base": 0, "mode": "lww"},
              {"id": "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3e", "collection": "todos", "record": "t7", "op": "delete",
               "hlc": "1732300000001.2@9f1c2a7b3d4e5f60", "base": 12, "mode": "reject"}
            ]}
            """
        let batch = try JSONCodec.decodeChangeBatch(bytes(push))
        #expect(batch.changes.count == 2)
        let first = batch.changes[0]
        #expect(first.id.description == "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d")
        #expect(first.collection.rawValue == "todos" && first.record.rawValue == "t1")
        #expect(first.operation == .upsert && first.mode == .lww && first.base == 0)
        #expect(first.fields == ["title": "Buy milk", "done": false])
        #expect(first.hlc == (try HLC(wallMillis: 1_732_300_000_000, counter: 0, node: 0x9F1C_2A7B_3D4E_5F60)))
        #expect(batch.changes[1].operation == .delete && batch.changes[1].mode == .reject && batch.changes[1].base == 12)
        #expect(batch.changes[1].fields.isEmpty)

        let response = """
            {"results": [
              {"id": "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d", "status": "applied", "seq": 42,
               "fields": {"title": {"v": "Buy milk", "hlc": "1732300000000.0@9f1c2a7b3d4e5f60", "seq": 42}}},
              {"id": "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3e", "status": "duplicate", "seq": 40},
              {"id": "0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3f", "status": "rejected", "conflicts": ["done"],
               "current": {"done": {"v": true, "hlc": "1732300000000.1@0000000000000002", "seq": 41}}}
             ],
             "head": 42, "serverTime": 1732300000123}
            """
        let decoded = try JSONCodec.decodePushResponse(bytes(response))
        #expect(decoded.head == 42 && decoded.serverTime == 1_732_300_000_123)
        guard case .applied(_, 42, let fields) = decoded.results[0], case .duplicate(_, 40, _) = decoded.results[1],
            case .rejected(_, let conflicts, let current) = decoded.results[2]
        else {
            Issue.record("unexpected results \(decoded.results)")
            return
        }
        #expect(fields["title"]?.value == "Buy milk" && fields["title"]?.seq == 42)
        #expect(conflicts == ["done"] && current["done"]?.value == true && current["done"]?.hlc.node == 2)

        let page = """
            {"changes": [
              {"seq": 41, "collection": "todos", "record": "t1", "deleted": false,
               "fields": {"done": {"v": true, "hlc": "1732300000000.1@0000000000000002", "seq": 41}}},
              {"seq": 42, "collection": "todos", "record": "t7", "deleted": true, "hlc": "1732300000001.2@9f1c2a7b3d4e5f60"}
             ],
             "cursor": 42, "hasMore": false, "remaining": 0, "head": 42}
            """
        let pulled = try JSONCodec.decodePullPage(bytes(page))
        #expect(pulled.cursor == 42 && !pulled.hasMore && pulled.remaining == 0 && pulled.head == 42)
        #expect(pulled.changes.map(\.seq) == [41, 42])
        #expect(pulled.changes[1].deleted && pulled.changes[1].hlc?.counter == 2)
    }

    @Test func numbersKeepTheirKind() throws {
        #expect(try JSONCodec.decodeValue(bytes("1")) == .int(1))
        #expect(try JSONCodec.decodeValue(bytes("1.0")) == .double(1))
        #expect(try JSONCodec.decodeValue(bytes("-0.0")) == .double(-0.0))
        #expect(try JSONCodec.decodeValue(bytes("1e2")) == .double(100))
        #expect(try JSONCodec.decodeValue(bytes("-9223372036854775808")) == .int(.min))
        #expect(String(decoding: try JSONCodec.encode(.double(1)), as: UTF8.self) == "1.0")
        #expect(String(decoding: try JSONCodec.encode(.double(1e16)), as: UTF8.self) == "1e+16")
        #expect(String(decoding: try JSONCodec.encode(.int(1)), as: UTF8.self) == "1")
        // Tried: NaN and infinity, which JSON cannot carry.
        #expect(throws: SyncError.self) { _ = try JSONCodec.encode(.double(.nan)) }
        #expect(throws: SyncError.self) { _ = try JSONCodec.encode(.array([.double(.infinity)])) }
    }

    @Test func bytesTravelAsBase64() throws {
        let value = Value.object(["blob": .bytes([0, 1, 2, 250, 251, 255]), "empty": .bytes([])])
        let text = String(decoding: try JSONCodec.encode(value), as: UTF8.self)
        #expect(text == #"{"blob":{"$b":"AAEC+vv/"},"empty":{"$b":""}}"#)
        #expect(try JSONCodec.decodeValue(Array(text.utf8)) == value)
        // Tried: bad base64, a $b that is not a string, and another reserved key.
        expectMalformed(#"{"$b":"A=B="}"#, "padding in the middle") { _ = try JSONCodec.decodeValue($0) }
        expectMalformed(#"{"$b":"AAE"}"#, "length not a multiple of 4") { _ = try JSONCodec.decodeValue($0) }
        expectMalformed(#"{"$b":7}"#, "$b not a string") { _ = try JSONCodec.decodeValue($0) }
        expectMalformed(#"{"$x":1}"#, "reserved key") { _ = try JSONCodec.decodeValue($0) }
        #expect(throws: SyncError.self) { _ = try JSONCodec.encode(.object(["$x": 1])) }
    }

    @Test func unknownKeysAreIgnored() throws {
        let page = #"{"changes":[],"cursor":3,"hasMore":true,"remaining":7,"head":10,"future":{"x":[1,2]}}"#
        let decoded = try JSONCodec.decodePullPage(bytes(page))
        #expect(decoded.cursor == 3 && decoded.hasMore && decoded.remaining == 7 && decoded.head == 10)
    }

    @Test func malformedDocumentsAreTypedErrors() {
        let decodeValue: ([UInt8]) throws -> Void = { _ = try JSONCodec.decodeValue($0) }
        expectMalformed(#"{"a": [1, 2"#, "truncated", decode: decodeValue)
        expectMalformed(String(repeating: "[", count: 10_000), "10,000 nested arrays", decode: decodeValue)
        expectMalformed(#""\ud800""#, "a lone high surrogate", decode: decodeValue)
        expectMalformed(#""\udc00x""#, "a lone low surrogate", decode: decodeValue)
        expectMalformed("123456789012345678901234567890", "an integer beyond 64 bits", decode: decodeValue)
        expectMalformed("1e999", "a double beyond range", decode: decodeValue)
        expectMalformed("[1, 2,]", "a trailing comma", decode: decodeValue)
        expectMalformed("012", "a leading zero", decode: decodeValue)
        expectMalformed("[1] x", "trailing garbage", decode: decodeValue)
        expectMalformed("\"tab\there\"", "a raw control character", decode: decodeValue)
        expectMalformed(#"{"a":1,"a":2}"#, "a repeated key", decode: decodeValue)
        expectMalformed("", "empty input", decode: decodeValue)
        #expect(throws: SyncError.self, "invalid UTF-8 bytes in a string") {
            _ = try JSONCodec.decodeValue([0x22, 0xC3, 0x28, 0x22])
        }
        let decodeBatch: ([UInt8]) throws -> Void = { _ = try JSONCodec.decodeChangeBatch($0) }
        expectMalformed(#"{"changes":[{"collection":"todos"}]}"#, "a change missing its keys", decode: decodeBatch)
        expectMalformed(#"{"changes":{}}"#, "changes not an array", decode: decodeBatch)
        expectMalformed(#"{"chunks":[]}"#, "the changes key missing", decode: decodeBatch)
        let change = #"{"id":"0193520a-7c1e-7b3f-8d2a-4f0e9c1b2a3d","collection":"todos","record":"t1","op":"upsert","fields":{},"hlc":"1.0@0000000000000001","base":0}"#
        #expect(throws: Never.self) { _ = try JSONCodec.decodeChangeBatch(Array("{\"changes\":[\(change)]}".utf8)) }
        for (from, to, what) in [
            ("\"op\":\"upsert\"", "\"op\":\"merge\"", "an unknown op"), ("\"base\":0", "\"base\":-1", "a negative base"),
            ("\"collection\":\"todos\"", "\"collection\":\"to dos\"", "an invalid collection"),
            ("\"record\":\"t1\"", "\"record\":\"\"", "an empty record id"), ("\"hlc\":\"1.0@0000000000000001\"", "\"hlc\":\"soon\"", "a bad HLC"),
            ("0193520a-7c1e", "0193520a+7c1e", "a bad id"), ("\"base\":0", "\"base\":0,\"mode\":\"maybe\"", "an unknown mode"),
        ] {
            expectMalformed("{\"changes\":[\(change.replacingOccurrences(of: from, with: to))]}", "\(what)", decode: decodeBatch)
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
