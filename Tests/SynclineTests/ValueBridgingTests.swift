import Foundation
import Syncline
import SynclineTesting
import Testing

@Suite("Codable bridging")
struct ValueBridgingTests {
    struct Address: Codable, Equatable { var street: String; var zip: Int? }
    enum Status: Codable, Equatable { case open, blocked(reason: String), done(at: Int64, by: [String]) }
    struct Model: Codable, Equatable {
        var id: String
        var title: String
        var done: Bool
        var count: Int
        var score: Double
        var ratio: Float
        var note: String?
        var tags: [String]
        var address: Address
        var history: [Address]
        var counters: [String: Int]
        var places: [String: Address]
        var status: Status
        var blob: Data
        var created: Date
        var extra: Value
    }

    let encoder = ValueEncoder()
    let decoder = ValueDecoder()

    func sample() -> Model {
        Model(
            id: "m1", title: "Buy milk", done: false, count: -42, score: -0.0, ratio: 0.25, note: nil,
            tags: ["a", "b"], address: Address(street: "Main", zip: nil),
            history: [Address(street: "Old", zip: 12345)], counters: ["x": 1, "y": -2],
            places: ["home": Address(street: "Elm", zip: 1)], status: .done(at: 1_732_300_000_000, by: ["alice"]),
            blob: Data([0, 1, 2, 255]), created: Date(timeIntervalSinceReferenceDate: 12345.5),
            extra: ["nested": [1, 2.5, nil, .bytes([9])]]
        )
    }

    @Test func nestedModelRoundTrips() throws {
        // Tried: a model with every kind of member: optionals, nested structs, arrays and
        // dictionaries of structs, an enum with associated values, Data, Date and a raw Value.
        let model = sample()
        let fields = try encoder.encodeFields(model)
        #expect(fields["count"] == .int(-42))
        #expect(fields["score"] == .double(-0.0))
        #expect(fields["blob"] == .bytes([0, 1, 2, 255]))
        #expect(fields["note"] == nil, "a nil optional is left out")
        #expect(fields["address"] == .object(["street": "Main"]))
        #expect(fields["extra"] == ["nested": [1, 2.5, nil, .bytes([9])]])
        let back = try decoder.decode(Model.self, fromFields: fields)
        #expect(back == model)
        #expect(back.score.sign == .minus)
        // And through the binary codec, as a store would keep it.
        var writer = BinaryWriter()
        writer.write(Value.object(fields))
        var reader = BinaryReader(writer.bytes)
        #expect(try decoder.decode(Model.self, from: reader.readValue()) == model)
    }

    @Test func integerWidthsAtTheirLimits() throws {
        struct Widths: Codable, Equatable {
            var i8: Int8, i16: Int16, i32: Int32, i64: Int64, u8: UInt8, u16: UInt16, u32: UInt32, u: UInt, u64: UInt64
        }
        for widths in [
            Widths(i8: .min, i16: .min, i32: .min, i64: .min, u8: 0, u16: 0, u32: 0, u: 0, u64: 0),
            Widths(i8: .max, i16: .max, i32: .max, i64: .max, u8: .max, u16: .max, u32: .max, u: UInt(Int64.max), u64: UInt64(Int64.max)),
        ] {
            #expect(try decoder.decode(Widths.self, from: encoder.encode(widths)) == widths)
        }
        // Tried: UInt64.max, which has no Int64 form.
        #expect {
            _ = try encoder.encode(["big": UInt64.max])
        } throws: { error in
            (error as? SyncError)?.code == .invalidValue && (error as? SyncError)?.message.contains("big") == true
        }
        // Tried: 300 into a UInt8; -1 into a UInt32.
        #expect(throws: SyncError.self) { _ = try decoder.decode(UInt8.self, from: .int(300)) }
        #expect(throws: SyncError.self) { _ = try decoder.decode(UInt32.self, from: .int(-1)) }
        #expect(try decoder.decode(Int.self, from: .double(3)) == 3)
        #expect(try decoder.decode(Double.self, from: .int(3)) == 3.0)
        #expect(throws: SyncError.self) { _ = try decoder.decode(Int.self, from: .double(3.5)) }
    }

    @Test func floatingPointExtremes() throws {
        for number in [Double.greatestFiniteMagnitude, -.leastNonzeroMagnitude, -0.0, .pi, 1e-300] {
            let back = try decoder.decode(Double.self, from: encoder.encode(number))
            #expect(back.bitPattern == number.bitPattern)
        }
        #expect(try decoder.decode(Float.self, from: encoder.encode(Float(1.5))) == 1.5)
        // Tried: a double that no Float holds exactly.
        #expect(throws: SyncError.self) { _ = try decoder.decode(Float.self, from: .double(0.1)) }
    }

    @Test func aModelThatIsNotAnObjectCannotBeARecord() throws {
        // Tried: a String, an array and an Int as the top-level model.
        for value in [try encoder.encode("just text"), try encoder.encode([1, 2]), try encoder.encode(7)] {
            #expect(value != .object([:]))
        }
        #expect {
            _ = try encoder.encodeFields([1, 2, 3])
        } throws: { error in
            (error as? SyncError)?.code == .invalidValue && (error as? SyncError)?.message.contains("object") == true
        }
    }

    @Test func wrongTypesNameThePath() throws {
        // Tried: history[0].zip holding a string where an Int? is declared.
        var fields = try encoder.encodeFields(sample())
        fields["history"] = [["street": "Old", "zip": "12345"]]
        #expect {
            _ = try decoder.decode(Model.self, fromFields: fields)
        } throws: { error in
            guard let error = error as? SyncError else { return false }
            return error.code == .invalidValue && error.message.contains(".history[0].zip")
                && error.message.contains("expected an integer") && error.message.contains("found a string")
        }
        // Tried: a required key missing.
        fields = try encoder.encodeFields(sample())
        fields["title"] = nil
        #expect {
            _ = try decoder.decode(Model.self, fromFields: fields)
        } throws: { error in
            (error as? SyncError)?.message.contains(".title") == true
        }
        // Tried: an unkeyed decode past the end of the array.
        #expect(throws: SyncError.self) { _ = try decoder.decode([Int].self, from: .object([:])) }
    }

    class Base: Codable {
        var name: String
        init(name: String) { self.name = name }
    }

    final class Derived: Base {
        var level: Int
        init(name: String, level: Int) {
            self.level = level
            super.init(name: name)
        }

        enum CodingKeys: String, CodingKey { case level }

        required init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            level = try container.decode(Int.self, forKey: .level)
            try super.init(from: container.superDecoder())
        }

        override func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(level, forKey: .level)
            try super.encode(to: container.superEncoder())
        }
    }

    @Test func classHierarchyThroughSuperEncoder() throws {
        let value = try encoder.encode(Derived(name: "root", level: 3))
        #expect(value == ["level": 3, "super": ["name": "root"]])
        let back = try decoder.decode(Derived.self, from: value)
        #expect(back.name == "root" && back.level == 3)
    }

    @Test func randomValuesRoundTripThroughCodable() throws {
        // Value is itself Codable: any random value survives encode → decode unchanged.
        for seed in 1...5 as ClosedRange<UInt64> {
            var model = RandomModel(seed: seed)
            for _ in 0..<300 {
                let value = model.value()
                #expect(try decoder.decode(Value.self, from: encoder.encode(value)) == value, "seed \(seed)")
            }
        }
    }
}
