// SPDX-License-Identifier: Apache-2.0
// The authorization server of Cordon's credential tests: oidc-provider on
// 127.0.0.1, an ephemeral port, with the client credentials grant, resource
// indicators (RFC 8707), introspection (RFC 7662), revocation (RFC 7009)
// and its metadata at /.well-known/openid-configuration.
//
// Usage: node server.js CLIENT_ID CLIENT_SECRET [OPTION...]
//   --ttl RESOURCE=SECONDS  tokens for RESOURCE live SECONDS (default 300)
//   --tls CERT KEY          serve HTTPS with this PEM certificate and key
//   --oidc-metadata-only    answer 404 at /.well-known/oauth-authorization-server
//                           (RFC 8414), as servers that speak only OpenID
//                           Connect Discovery do
// It prints "listening PORT" once it accepts connections and runs until killed.
import Provider from 'oidc-provider';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';

const [clientId, clientSecret, ...options] = process.argv.slice(2);
if (!clientId || !clientSecret) {
  console.error('usage: node server.js CLIENT_ID CLIENT_SECRET [--ttl RESOURCE=SECONDS] [--tls CERT KEY] [--oidc-metadata-only]');
  process.exit(2);
}

const ttls = new Map();
let tls;
let oidcMetadataOnly = false;
for (let i = 0; i < options.length; i += 1) {
  if (options[i] === '--ttl') {
    const [resource, seconds] = options[(i += 1)].split('=');
    ttls.set(resource, Number(seconds));
  } else if (options[i] === '--tls') {
    tls = { cert: readFileSync(options[i + 1]), key: readFileSync(options[i + 2]) };
    i += 2;
  } else if (options[i] === '--oidc-metadata-only') {
    oidcMetadataOnly = true;
  } else {
    console.error(`unknown option ${options[i]}`);
    process.exit(2);
  }
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
  accessTokenTTL: ttls.get(resource) ?? 300,
});

const server = tls ? createHttps(tls) : createHttp();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, {
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
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (oidcMetadataOnly && req.url.startsWith('/.well-known/oauth-authorization-server')) {
      res.writeHead(404).end();
      return;
    }
    callback(req, res);
  });
  console.log(`listening ${port}`);
});
