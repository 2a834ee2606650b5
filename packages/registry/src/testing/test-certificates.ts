import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Files of a CA made for one test run, a server certificate it signed, and a token-signing pair. */
export interface TestCertificates {
  /** The CA certificate (PEM): what a client must trust. */
  caCert: string;
  /** The registry's certificate (for 127.0.0.1 and localhost) and key. */
  serverCert: string;
  serverKey: string;
  /** A self-signed certificate and key that sign registry tokens (the registry's rootcertbundle). */
  tokenCert: string;
  tokenKey: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run("openssl", args, { cwd });
}

/** Makes the certificates with openssl in `dir` (short-lived, 2048-bit RSA: quick to make). */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const f = (name: string) => join(dir, name);
  await writeFile(
    f("server.ext"),
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
  );
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=contexec test CA",
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.crt"),
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  await openssl(
    [
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      f("server.key"),
      "-out",
      f("server.csr"),
    ],
    dir,
  );
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      f("server.csr"),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      f("server.ext"),
      "-out",
      f("server.crt"),
    ],
    dir,
  );
  await openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=contexec test token issuer",
      "-keyout",
      f("token.key"),
      "-out",
      f("token.crt"),
    ],
    dir,
  );
  return {
    caCert: f("ca.crt"),
    serverCert: f("server.crt"),
    serverKey: f("server.key"),
    tokenCert: f("token.crt"),
    tokenKey: f("token.key"),
  };
}
