/// A value bound to a statement parameter (see ``SQLiteConnection/queryPlan(_:bindings:)``).
package enum SQLiteValue: Sendable {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
}
