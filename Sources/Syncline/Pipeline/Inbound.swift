/// What the transport brings back for the ``Reconciler`` to apply (DESIGN §3, transport →
/// reconciler), in the order it arrived.
package enum Inbound: Sendable {
    /// The server's answer to a pushed batch, one result per entry.
    case answer([QueuedChange], PushResponse, total: (count: Int, bytes: Int))
    /// A change the server refused for its content, alone in its batch: it is dead-lettered.
    case refused(QueuedChange, SyncError, total: (count: Int, bytes: Int))
}
