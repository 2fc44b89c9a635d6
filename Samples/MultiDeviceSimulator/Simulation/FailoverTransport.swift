import Synchronization
import Syncline

/// One device's way to several server nodes (`syncline-sim --server URL1,URL2,…`): it uses one
/// node until a request finds it unavailable (a node killed, or answering 503), then the next one,
/// round the list. The failed request is not retried here: the client retries as after any
/// transport failure, through the next node. Live heads come from the node used when the client
/// asked; after a failover the client's periodic pulls keep it in step.
final class FailoverTransport: SyncTransport {
    let nodes: [any SyncTransport]
    private let current: Mutex<Int>

    /// - Parameter first: the node this device starts on (devices are spread round robin).
    init(_ nodes: [any SyncTransport], first: Int) {
        precondition(!nodes.isEmpty, "a device needs at least one node")
        self.nodes = nodes
        current = Mutex(first % nodes.count)
    }

    /// The index of the node in use.
    var node: Int { current.withLock { $0 } }

    func push(_ batch: ChangeBatch) async throws -> PushResponse {
        let (index, transport) = using()
        do {
            return try await transport.push(batch)
        } catch {
            failed(index, error)
            throw error
        }
    }

    func pull(after cursor: UInt64, from position: UInt64, limit: Int, epoch: Epoch?) async throws -> PullPage {
        let (index, transport) = using()
        do {
            return try await transport.pull(after: cursor, from: position, limit: limit, epoch: epoch)
        } catch {
            failed(index, error)
            throw error
        }
    }

    func liveHeads() async -> AsyncStream<UInt64> { await using().1.liveHeads() }

    /// What every node's transport carried.
    var traffic: TransportTraffic? {
        var total = TransportTraffic()
        for node in nodes {
            guard let traffic = node.traffic else { continue }
            total.bytesSent += traffic.bytesSent
            total.bytesReceived += traffic.bytesReceived
        }
        return total
    }

    private func using() -> (Int, any SyncTransport) {
        let index = current.withLock { $0 }
        return (index, nodes[index])
    }

    /// Moves to the next node when `index` (still the one in use) was found unavailable.
    private func failed(_ index: Int, _ error: any Error) {
        guard nodes.count > 1, let error = error as? SyncError, error.code == .transportUnavailable else { return }
        current.withLock { current in
            if current == index { current = (index + 1) % nodes.count }
        }
    }
}
