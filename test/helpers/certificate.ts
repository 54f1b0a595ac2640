/** Self-signed certificates made by the tests with openssl (nginx's, coturn's TLS listener). */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A self-signed EC certificate for `ip` and `name`, valid for a day, written into `dir`. */
export function makeCertificate(dir: string, ip: string, name: string): { certFile: string; keyFile: string } {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=IP:${ip},DNS:${name}`,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { certFile, keyFile };
}
