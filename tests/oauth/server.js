// SPDX-License-Identifier: Apache-2.0
// The authorization server of Cordon's credential tests: oidc-provider on
// 127.0.0.1, an ephemeral port, with the client credentials grant, resource
// indicators (RFC 8707), introspection (RFC 7662), revocation (RFC 7009)
// its metadata at /.well-known/openid-configuration, and token exchange
// (RFC 8693) as a grant registered on top (oidc-provider has none).
//
// Clients: CLIENT_ID (client_secret_basic), CLIENT_ID-post
// (client_secret_post), each with CLIENT_SECRET; CLIENT_ID-jwt
// (private_key_jwt, with --jwt-key); and the agent's own client
// AGENT_ID (client_secret_basic, CLIENT_SECRET), which may exchange tokens.
// A user's token, to exchange, comes from POST /test/user-token with
// sub=USER (a test-only route: the tests have no browser to log in with).
//
// Usage: node server.js CLIENT_ID CLIENT_SECRET [OPTION...]
//   --ttl RESOURCE=SECONDS  tokens for RESOURCE live SECONDS (default 300)
//   --tls CERT KEY          serve HTTPS with this PEM certificate and key
//   --agent ID              the agent's client id (default test-agent)
//   --jwt-key PEM           register CLIENT_ID-jwt, which authenticates by
//                           private_key_jwt with this public key (kid test-key)
//   --fail-token N          answer the first N token requests 503
//   --oidc-metadata-only    answer 404 at /.well-known/oauth-authorization-server
//                           (RFC 8414), as servers that speak only OpenID
//                           Connect Discovery do
// GET /test/issued answers the audience and scope of every token issued so
// far, oldest first (a test-only route: what the server saw, not what
// Cordon says it asked for).
// It prints "listening PORT" once it accepts connections and runs until killed.
import Provider, { errors } from 'oidc-provider';
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';

const [clientId, clientSecret, ...options] = process.argv.slice(2);
if (!clientId || !clientSecret) {
  console.error('usage: node server.js CLIENT_ID CLIENT_SECRET [--ttl RESOURCE=SECONDS] [--tls CERT KEY] [--oidc-metadata-only]');
  process.exit(2);
}

const ttls = new Map();
let tls;
let oidcMetadataOnly = false;
let agentId = 'test-agent';
let jwtKey;
let tokenFailures = 0;
for (let i = 0; i < options.length; i += 1) {
  if (options[i] === '--ttl') {
    const [resource, seconds] = options[(i += 1)].split('=');
    ttls.set(resource, Number(seconds));
  } else if (options[i] === '--tls') {
    tls = { cert: readFileSync(options[i + 1]), key: readFileSync(options[i + 2]) };
    i += 2;
  } else if (options[i] === '--fail-token') {
    tokenFailures = Number(options[(i += 1)]);
  } else if (options[i] === '--jwt-key') {
    jwtKey = { ...createPublicKey(readFileSync(options[(i += 1)])).export({ format: 'jwk' }), kid: 'test-key' };
  } else if (options[i] === '--agent') {
    agentId = options[(i += 1)];
  } else if (options[i] === '--oidc-metadata-only') {
    oidcMetadataOnly = true;
  } else {
    console.error(`unknown option ${options[i]}`);
    process.exit(2);
  }
}

// One client per authentication method Cordon speaks.
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

const client = (id, method, grants = ['client_credentials']) => ({
  client_id: id,
  client_secret: clientSecret,
  grant_types: grants,
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

// Claims a token carries beyond the model's (sub, act), read by
// extraTokenClaims when the token is saved.
const extraClaims = new WeakMap();

const tokenFor = (provider, theClient, scope, resource, claims) => {
  const token = new provider.ClientCredentials({ client: theClient, scope });
  token.resourceServer = new provider.ResourceServer(resource, resourceServer(resource));
  extraClaims.set(token, claims);
  return token;
};

// RFC 8693 section 2: the subject token, a user's, for a token of the
// authenticated client with at most the user's scope, naming the client
// that presented the actor token as the actor (section 4.1).
const exchange = (provider) => async (ctx) => {
  const { params, client: theClient } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN || params.actor_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest(`subject_token_type and actor_token_type must be ${ACCESS_TOKEN}`);
  }
  const subject = await provider.ClientCredentials.find(params.subject_token);
  if (!subject?.isValid || !subject.extra?.sub) {
    throw new errors.InvalidGrant('subject_token is not an active user token');
  }
  const actor = await provider.ClientCredentials.find(params.actor_token);
  if (!actor?.isValid || actor.clientId !== theClient.clientId) {
    throw new errors.InvalidGrant('actor_token is not an active token of the authenticated client');
  }
  const held = new Set((subject.scope ?? '').split(' '));
  const asked = params.scope ? params.scope.split(' ') : [...held];
  const beyond = asked.filter((s) => !held.has(s));
  if (beyond.length > 0) {
    throw new errors.InvalidScope(`the subject token does not hold ${beyond.join(' ')}`, beyond.join(' '));
  }
  const resource = params.resource ?? subject.aud;
  const token = tokenFor(provider, theClient, asked.join(' '), resource,
    { sub: subject.extra.sub, act: { sub: actor.clientId } });
  ctx.body = {
    access_token: await token.save(),
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
};

// The user's token: as if USER had logged in to an app and granted it
// every scope of the orders API.
const userToken = async (provider, req, res) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  const sub = new URLSearchParams(body).get('sub');
  const app = await provider.Client.find(clientId);
  const token = tokenFor(provider, app, 'orders:read orders:write', 'https://orders.test/', { sub });
  const value = await token.save();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ access_token: value }));
};

const server = tls ? createHttps(tls) : createHttp();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, {
    clients: [
      client(clientId, 'client_secret_basic'),
      client(`${clientId}-post`, 'client_secret_post'),
      client(agentId, 'client_secret_basic', ['client_credentials', TOKEN_EXCHANGE]),
      ...(jwtKey ? [{
        client_id: `${clientId}-jwt`,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [jwtKey] },
      }] : []),
    ],
    extraTokenClaims: (ctx, token) => extraClaims.get(token),
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
  provider.registerGrantType(TOKEN_EXCHANGE, exchange(provider), [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'requested_token_type', 'scope', 'resource',
  ]);
  const issued = [];
  provider.on('client_credentials.saved', (token) => {
    issued.push({ aud: token.aud ?? token.resourceServer?.audience, scope: token.scope });
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (oidcMetadataOnly && req.url.startsWith('/.well-known/oauth-authorization-server')) {
      res.writeHead(404).end();
      return;
    }
    if (req.method === 'POST' && req.url === '/token' && tokenFailures > 0) {
      tokenFailures -= 1;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'temporarily_unavailable' }));
      return;
    }
    if (req.method === 'GET' && req.url === '/test/issued') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(issued));
      return;
    }
    if (req.method === 'POST' && req.url === '/test/user-token') {
      userToken(provider, req, res);
      return;
    }
    callback(req, res);
  });
  console.log(`listening ${port}`);
});
