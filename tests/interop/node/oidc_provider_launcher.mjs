// Starts panva's node-oidc-provider on a loopback port for rs_guard's interop tests.
//
// Usage: node oidc_provider_launcher.mjs CONFIG.json
//
// The test writes CONFIG.json (knobs below); this script binds the port first, so that the
// issuer it hands the provider names the port really bound (port 0 = a free one), then prints
// one line `oidc-provider ready {json}` on stdout. It stops on SIGTERM/SIGINT and when its stdin
// closes, so a test run that dies cannot leave a provider behind.
//
// Knobs (all optional except jwks):
//   host        "127.0.0.1" (default), "::1" or "localhost": loopback only, never anything else
//   port        0 (default: a free port) or a fixed port, e.g. to restart under the same issuer
//   jwks        {"keys": [private JWKs]}; the first key of a type signs (rotation: new key first)
//   clients     client metadata records (RFC 7591 names), as oidc-provider takes them
//   resources   {"<resource indicator>": {scope, format: "jwt"|"opaque", alg, kid, audience, ttl}}
//               the RFC 8707 resource servers; format "jwt" gives RFC 9068 access tokens
//   scopes      OpenID scopes the provider knows (default: openid, offline_access)
//   accounts    {"<account id>": {claims}}; any login name is accepted (devInteractions)
//   ttl         {"<model>": seconds}, e.g. {"AccessToken": 600, "ClientCredentials": 600}
//   registration  {enabled, initialAccessToken: "<token>" | false, management,
//                  rotateRegistrationAccessToken}   (RFC 7591 / RFC 7592)
//   dpop        {enabled (default true), requireNonce, nonceSecret: "<64 hex digits>"}
//   provider    any other JSON-shaped oidc-provider configuration, merged over the above
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

function fail(message) {
  process.stderr.write(`oidc-provider launcher: ${message}\n`);
  process.exit(2);
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// Plain objects merge member by member; anything else (arrays included) replaces.
function merge(base, extra) {
  const out = { ...base };
  for (const [key, value] of Object.entries(extra ?? {})) {
    out[key] = isObject(value) && isObject(out[key]) ? merge(out[key], value) : value;
  }
  return out;
}

// The RFC 8707 resource servers the test configured; an unknown indicator is invalid_target,
// which is what lets a test ask for a token "for another resource" only where it configured one.
function resourceServerInfo(resources) {
  return async function getResourceServerInfo(ctx, indicator) {
    const rs = Object.hasOwn(resources, indicator) ? resources[indicator] : undefined;
    if (rs === undefined) throw new errors.InvalidTarget();
    const info = { scope: rs.scope ?? '', accessTokenFormat: rs.format ?? 'jwt' };
    if (rs.audience !== undefined) info.audience = rs.audience;
    if (rs.ttl !== undefined) info.accessTokenTTL = rs.ttl;
    if (info.accessTokenFormat === 'jwt') {
      info.jwt = { sign: { alg: rs.alg ?? 'ES256', ...(rs.kid ? { kid: rs.kid } : {}) } };
    }
    return info;
  };
}

// Short lifetimes (seconds) for a test run, given explicitly (the provider's defaults are for
// production and say so on every use). Access tokens keep the provider's rule that a resource
// server's own `accessTokenTTL` (the `ttl` of a resource here) wins.
function lifetimes(ttl) {
  const fixed = {
    AccessToken: 600,
    AuthorizationCode: 60,
    ClientCredentials: 600,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
    ...ttl,
  };
  const perResource = (name) => (ctx, token) => token.resourceServer?.accessTokenTTL ?? fixed[name];
  return {
    ...fixed,
    AccessToken: perResource('AccessToken'),
    ClientCredentials: perResource('ClientCredentials'),
  };
}

function configuration(config) {
  const resources = config.resources ?? {};
  const accounts = config.accounts ?? {};
  const registration = config.registration ?? {};
  const dpop = config.dpop ?? {};
  const base = {
    clients: config.clients ?? [],
    jwks: config.jwks,
    scopes: config.scopes ?? ['openid', 'offline_access'],
    // A fresh secret per run: cookies of an earlier run must not be accepted.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { ...(accounts[id] ?? {}), sub: id };
        },
      };
    },
    // Every code flow of the tests uses PKCE; the provider refuses one that does not.
    pkce: { required: () => true },
    ttl: lifetimes(config.ttl ?? {}),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: resourceServerInfo(resources),
        // A code granted for one resource is exchanged for that resource's token even when
        // the token request repeats no `resource` (RFC 8707 §2.2 leaves it to the server).
        useGrantedResource: async () => true,
      },
      registration: {
        enabled: Boolean(registration.enabled),
        initialAccessToken: registration.initialAccessToken ?? false,
      },
      registrationManagement: {
        enabled: Boolean(registration.enabled && registration.management),
        rotateRegistrationAccessToken: registration.rotateRegistrationAccessToken ?? true,
      },
      dPoP: {
        enabled: dpop.enabled ?? true,
        ...(dpop.requireNonce ? { requireNonce: () => true } : {}),
        ...(dpop.nonceSecret ? { nonceSecret: Buffer.from(dpop.nonceSecret, 'hex') } : {}),
      },
    },
  };
  return merge(base, config.provider);
}

async function main() {
  const path = process.argv[2];
  if (!path) fail('usage: oidc_provider_launcher.mjs CONFIG.json');
  let config;
  try {
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    fail(`cannot read ${path}: ${err.message}`);
  }
  const host = config.host ?? '127.0.0.1';
  if (!LOOPBACK.has(host)) fail(`host must be loopback (${[...LOOPBACK].join(', ')}), not ${host}`);
  if (!isObject(config.jwks) || !Array.isArray(config.jwks.keys)) fail('jwks {"keys": [...]} is required');

  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port ?? 0, host, resolve);
  }).catch((err) => fail(`cannot listen on ${host}:${config.port ?? 0}: ${err.message}`));
  const { port } = server.address();
  const issuer = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const provider = new Provider(issuer, configuration(config));
  // What went wrong inside the provider goes to stderr, which the test keeps as the log.
  for (const event of ['server_error', 'grant.error', 'authorization.error', 'introspection.error',
    'revocation.error', 'registration_create.error', 'registration_read.error',
    'registration_update.error', 'registration_delete.error', 'userinfo.error']) {
    provider.on(event, (...args) => {
      const err = args.find((arg) => arg instanceof Error);
      process.stderr.write(`${event}: ${err ? `${err.name}: ${err.message} ${err.error_description ?? ''}` : ''}\n`);
    });
  }
  server.on('request', provider.callback());

  const sockets = new Set();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const stop = () => {
    server.close(() => process.exit(0));
    for (const socket of sockets) socket.destroy();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();

  const { version } = JSON.parse(
    await readFile(new URL('./node_modules/oidc-provider/package.json', import.meta.url), 'utf8'),
  );
  process.stdout.write(`oidc-provider ready ${JSON.stringify({
    issuer, port, node: process.version, oidc_provider: version,
  })}\n`);
}

await main();
