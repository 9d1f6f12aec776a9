// Shared by the fakes: start an HTTP server on 127.0.0.1 (port 0 = any free port).
//
// Beacon pools keep-alive connections; a long idle timeout keeps a fake from closing one just
// as Beacon reuses it, which would make tests flaky for reasons no test is about.
export async function listenLoopback(server, port = 0) {
    server.keepAliveTimeout = 60_000;
    server.headersTimeout = 65_000;
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
            server.off('error', reject);
            resolve();
        });
    });
    return server.address().port;
}
