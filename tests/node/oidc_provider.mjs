// A real, certified OpenID provider for the tests (panva's `oidc-provider`), on loopback.
//
// Why: `lockgate login --device` needs a provider with the device authorization grant
// (RFC 8628), which oidc-provider-mock lacks. One public client, `lockgate-device`, may use
// the device grant, refresh tokens and the code flow; users sign in through the package's
// development interactions (any login name is accepted, no password), so a test can walk
// the user-code page, the login page and the consent page with an HTTP client.
//
//   node oidc_provider.mjs [PORT]      (PORT 0 or absent: any free port)
//
// Prints `ready http://127.0.0.1:<port>` on stdout once it listens. Test-only: the cookie
// key and the signing key are throwaway, nothing is stored on disk.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
const server = createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'lockgate-device',
      client_name: 'lockgate (test)',
      token_endpoint_auth_method: 'none',
      grant_types: [
        'urn:ietf:params:oauth:grant-type:device_code',
        'refresh_token',
        'authorization_code',
      ],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
  ],
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  scopes: ['openid', 'offline_access', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the ID token carries email and groups, as lockgate reads them
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, groups: ['eng'] };
      },
    };
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());
console.log(`ready ${issuer}`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
