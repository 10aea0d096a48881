// A TCP port free on 127.0.0.1, for servers that must keep one port across restarts (a scrape target).
import net from 'node:net';

/**
 * A port the kernel handed out for 127.0.0.1 and that was released again at once. Another process could take it
 * before the caller binds it; on a test machine that is rare enough.
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
