/// A page the server sent without being asked (a live channel: the catch-up after a hello, then a
/// page after each commit), for the ``Reconciler`` to apply as it comes (DESIGN §3, transport →
/// reconciler). `after` and `from` are the server session's, as in a pull: the reconciler applies
/// the page only when it continues the device's own cursor, and pulls otherwise.
public struct LivePage: Sendable, Hashable {
    public var after: UInt64
    public var from: UInt64
    public var page: PullPage

    public init(after: UInt64, from: UInt64, page: PullPage) {
        self.after = after
        self.from = from
        self.page = page
    }
}
