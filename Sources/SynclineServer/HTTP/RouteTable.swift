import HTTPTypes
import Hummingbird
import Syncline

/// Every HTTP route of the server in one table: the router is built from it, and a request that
/// matches no route is answered from it too — 405 with `Allow` when its path is served with other
/// methods, 404 otherwise, both with the protocol's JSON error body.
struct RouteTable<Context: RequestContext>: Sendable {
    typealias Handler = @Sendable (Request, Context) async throws -> Response

    struct Route: Sendable {
        let method: HTTPRequest.Method
        /// A Hummingbird path: literal segments and `:parameter` segments.
        let path: String
        let handler: Handler
    }

    private(set) var routes: [Route] = []

    mutating func add(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        routes.append(Route(method: method, path: path, handler: handler))
    }

    /// Adds every route to `router`, then the answer for requests no route matches.
    /// - Parameter refuse: the protocol's error answer.
    func register(on router: Router<Context>, refuse: @escaping @Sendable (SyncError) -> Response) {
        for route in routes {
            router.on(RouterPath(route.path), method: route.method) { request, context in try await route.handler(request, context) }
        }
        // A middleware added after the routes wraps only the router's not-found answer.
        router.add(middleware: Unmatched(table: self, refuse: refuse))
    }

    /// The methods served on `path` (a request path), in table order; empty when no route has it.
    func methods(servedOn path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        var methods: [HTTPRequest.Method] = []
        for route in routes where Self.matches(route.path, segments) && !methods.contains(route.method) {
            methods.append(route.method)
        }
        return methods
    }

    private static func matches(_ pattern: String, _ segments: [Substring]) -> Bool {
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: true)
        guard parts.count == segments.count else { return false }
        return zip(parts, segments).allSatisfy { part, segment in part.hasPrefix(":") || part == segment }
    }

    /// Answers a request that matched no route.
    struct Unmatched: RouterMiddleware {
        let table: RouteTable
        let refuse: @Sendable (SyncError) -> Response

        // `@concurrent`: the protocol is declared in a module without NonisolatedNonsendingByDefault.
        @concurrent
        func handle(
            _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
        ) async throws -> Response {
            let path = request.uri.path
            let allowed = table.methods(servedOn: path)
            guard !allowed.isEmpty else {
                return refuse(SyncError(.notFound, "no route \(path.prefix(200))"))
            }
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            var response = refuse(
                SyncError(.methodNotAllowed, "\(request.method.rawValue.prefix(40)) is not served on \(path.prefix(200)); allowed: \(list)")
            )
            response.headers[.allow] = list
            return response
        }
    }
}
