// SPDX-License-Identifier: Apache-2.0
// The authorization server of Cordon's credential tests: oidc-provider on
// 127.0.0.1, an ephemeral port, with the client credentials grant, resource
// indicators (RFC 8707), introspection (RFC 7662) and revocation (RFC
// 7009). Usage: node server.js CLIENT_ID CLIENT_SECRET. It prints
// "listening PORT" once it accepts connections and runs until killed.
import Provider from 'oidc-provider';
import { createServer } from 'node:http';

const [clientId, clientSecret] = process.argv.slice(2);
if (!clientId || !clientSecret) {
  console.error('usage: node server.js CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

// One client per authentication method Cordon speaks.
const client = (id, method) => ({
  client_id: id,
  client_secret: clientSecret,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: method,
});

// Every resource is a tool's API; its scopes are those the tests ask for.
const resourceServer = (resource) => ({
  audience: resource,
  scope: 'orders:read orders:write',
  accessTokenFormat: 'opaque',
  accessTokenTTL: 300,
});

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [
      client(clientId, 'client_secret_basic'),
      client(`${clientId}-post`, 'client_secret_post'),
    ],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => resourceServer(resource),
      },
    },
  });
  server.on('request', provider.callback());
  console.log(`listening ${port}`);
});
