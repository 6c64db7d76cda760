// Test OpenID provider for the oauth-helper integration rig (oidc-provider 9).
//
// Serves HTTPS on 127.0.0.1 with three clients (the helper and a Databricks
// stand-in, public; the git server, confidential, for RFC 7662 introspection) and a few /_test/
// endpoints that let tests count, slow down and invalidate tokens.
// Only "READY <port>" goes to stdout; everything else goes to stderr.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

import Provider from 'oidc-provider';

const env = {
  port: Number(process.env.PORT ?? 0),
  cert: required('TLS_CERT'),
  key: required('TLS_KEY'),
  // The mount prefix has no trailing slash: "/oidc", or "" for the root.
  prefix: (process.env.ISSUER_PATH ?? '').replace(/\/+$/, ''),
  host: process.env.HOSTNAME || '127.0.0.1',
};

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.js: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

// Mutable test knobs, changed through /_test/.
const knobs = { accessTtl: 3600, delayMs: 0 };
const counts = {};

// Grant types seen besides these (client_credentials, unknown) get a key
// of their own on first use; a reset zeroes them all.
function resetCounts() {
  for (const key of ['authorization_code', 'refresh_token', 'device_code', 'total']) {
    counts[key] = 0;
  }
  for (const key of Object.keys(counts)) {
    counts[key] = 0;
  }
}
resetCounts();

// A Map-backed adapter, unlike the bundled LRU one (1000 entries), never
// evicts live grants in a long session and lets /_test/ enumerate tokens.
const store = new Map();

class RigAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) {
      return undefined;
    }
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    return this.findWhere((payload) => payload.uid === uid);
  }

  async findByUserCode(userCode) {
    return this.findWhere((payload) => payload.userCode === userCode);
  }

  async findWhere(predicate) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && predicate(entry.payload)) {
        return this.find(key.slice(this.model.length + 1));
      }
    }
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (entry.payload.grantId === grantId) {
        store.delete(key);
      }
    }
  }
}

function destroyAll(model) {
  let removed = 0;
  for (const key of store.keys()) {
    if (key.startsWith(`${model}:`)) {
      store.delete(key);
      removed += 1;
    }
  }
  return removed;
}

function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256' }] };
}

const account = (sub) => ({
  accountId: sub,
  async claims() {
    return { sub, name: `Test User ${sub}`, email: `${sub}@example.test`, email_verified: true };
  },
});

const configuration = {
  adapter: RigAdapter,
  jwks: signingKeys(),
  cookies: { keys: [randomBytes(32).toString('hex')] },
  clients: [
    {
      client_id: 'helper-test',
      client_name: 'oauth-helper test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [
        'authorization_code',
        'refresh_token',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
      // Any port is accepted on these loopback URIs (RFC 8252 section 7.3).
      redirect_uris: ['http://127.0.0.1/', 'http://127.0.0.1/callback', 'http://localhost:8020'],
    },
    {
      // Stands in for Databricks' public CLI client: a web client, so only
      // the exact strings registered here pass (no RFC 8252 any-port rule),
      // as a real workspace registers http://localhost:8020 to 8040.
      client_id: 'databricks-cli',
      client_name: 'Databricks CLI (rig)',
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: Array.from({ length: 21 }, (_, i) => `http://localhost:${8020 + i}`),
    },
    {
      client_id: 'git-server',
      client_secret: 'git-server-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'offline_access', 'profile', 'email', 'git', 'all-apis'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  findAccount: async (_ctx, sub) => account(sub),
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true },
  // Refresh tokens without the offline_access + consent dance, rotated on
  // every use so that a replayed refresh token fails (RFC 9700 4.14.2).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: () => knobs.accessTtl,
    AuthorizationCode: 120,
    DeviceCode: 600,
    Grant: 86400,
    IdToken: 3600,
    Interaction: 3600,
    RefreshToken: 86400,
    Session: 86400,
  },
};

// The issuer needs the real port, only known once listening when PORT=0, so
// the provider is built in the listen callback.
function buildProvider(port) {
  const provider = new Provider(`https://${env.host}:${port}${env.prefix}`, configuration);
  provider.on('grant.error', (ctx, err) => {
    const detail = err.error_detail ?? err.error_description ?? '';
    console.error(`grant.error ${grantType(ctx)}: ${err.error ?? err.name} ${detail}`);
  });
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  provider.use(countTokenRequests);
  return provider.callback();
}

function grantType(ctx) {
  const type = ctx.oidc?.params?.grant_type ?? 'unknown';
  return type.startsWith('urn:ietf:params:oauth:grant-type:') ? type.split(':').pop() : type;
}

// Counts every token request, failed ones included; the grant type is only
// known after oidc-provider parsed the body, hence counting after next().
async function countTokenRequests(ctx, next) {
  pinHost(ctx);
  if (ctx.path.startsWith('/_test/')) {
    testEndpoint(ctx);
    return;
  }
  const isToken = ctx.method === 'POST' && ctx.path === '/token';
  if (isToken && knobs.delayMs > 0) {
    await new Promise((resolve) => { setTimeout(resolve, knobs.delayMs); });
  }
  await next();
  if (isToken) {
    const type = grantType(ctx);
    counts[type] = (counts[type] ?? 0) + 1;
    counts.total += 1;
  }
}

// Under a test host name, endpoints and redirects use that name even for a
// request sent to 127.0.0.1 (by a client that cannot resolve the name), as
// behind a real DNS name; oidc-provider builds them from the Host header.
function pinHost(ctx) {
  const port = ctx.req.socket.localPort;
  if (env.host !== '127.0.0.1') {
    ctx.req.headers.host = `${env.host}:${port}`;
  }
}

function testEndpoint(ctx) {
  const action = `${ctx.method} ${ctx.path}`;
  const number = (name) => Number(ctx.query[name]);
  ctx.type = 'json';
  switch (action) {
    case 'GET /_test/counts':
      ctx.body = counts;
      return;
    case 'POST /_test/reset':
      resetCounts();
      ctx.body = counts;
      return;
    case 'POST /_test/ttl':
      knobs.accessTtl = number('access');
      ctx.body = { access: knobs.accessTtl };
      return;
    case 'POST /_test/delay':
      knobs.delayMs = number('ms');
      ctx.body = { ms: knobs.delayMs };
      return;
    case 'POST /_test/revoke-refresh':
      ctx.body = { revoked: destroyAll('RefreshToken') };
      return;
    case 'POST /_test/revoke-access':
      ctx.body = { revoked: destroyAll('AccessToken') };
      return;
    default:
      ctx.status = 404;
      ctx.body = { error: `no test endpoint ${action}` };
  }
}

let callback;

// Mounting under a prefix: oidc-provider derives its mount path from
// req.originalUrl minus req.url, as when it runs under express.
function handle(req, res) {
  if (!env.prefix) {
    callback(req, res);
    return;
  }
  const { url } = req;
  if (url !== env.prefix && !url.startsWith(`${env.prefix}/`) && !url.startsWith(`${env.prefix}?`)) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not under the issuer path\n');
    return;
  }
  req.originalUrl = url;
  req.url = url.slice(env.prefix.length) || '/';
  callback(req, res);
}

const server = createServer(
  { cert: readFileSync(env.cert), key: readFileSync(env.key) },
  handle,
);

server.listen(env.port, '127.0.0.1', () => {
  const { port } = server.address();
  callback = buildProvider(port);
  process.stdout.write(`READY ${port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
