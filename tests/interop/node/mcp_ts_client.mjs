// The TypeScript MCP SDK's client (@modelcontextprotocol/sdk), driven line by line from a test.
//
//   node mcp_ts_client.mjs CONFIG.json
//
// CONFIG: {"server_url", "redirect_uri", "client_name", "grant_types": [...],
//          "client_metadata_url": "https://..." | null, "step_up": true | false}
//
// Every line on stdin is one JSON command; every answer one JSON line on stdout:
//   {"op": "connect"}                      -> {"ok": true, "protocol": "..."}
//   {"op": "call", "name", "arguments"}    -> {"ok": true, "result": {...}} | {"ok": false, "error", "status"}
//   {"op": "list"}                         -> {"ok": true, "tools": [...]}
//   {"op": "state"}                        -> {"ok": true, "tokens", "client_information", "events"}
//   {"op": "forget_refresh_token"}         -> {"ok": true}
//   {"op": "close"}                        -> {"ok": true}, then exit
//
// The OAuth client provider is the SDK's interface, implemented in memory. Its redirect handler
// plays the user's browser: it GETs the authorization URL at the IdP (whose user the test
// scripts), reads the redirect back to `redirect_uri`, checks `state` and RFC 9207 `iss`, and
// keeps the code for `transport.finishAuth(code)`. With `step_up`, it also adds the parameters
// of the last RFC 9470 challenge (acr_values, max_age, claims) to the authorization URL: the SDK
// does not know RFC 9470 (it treats that 401 as "no token").
//
// Every HTTP request the SDK makes goes through `recordingFetch`, so the test sees challenges,
// discovery, registration and each token request's grant type.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const events = [];
let pendingStepUp = null;

function stepUpParams(header) {
  // RFC 9470 §3: error="insufficient_user_authentication" with acr_values / max_age; the
  // `claims` parameter (base64 JSON, as rs_guard sends it) becomes the OIDC claims request.
  const field = (name) => {
    const match = header.match(new RegExp(`${name}="([^"]*)"`));
    return match ? match[1] : undefined;
  };
  if (field('error') !== 'insufficient_user_authentication') return null;
  const out = {};
  if (field('acr_values')) out.acr_values = field('acr_values');
  if (field('max_age')) out.max_age = field('max_age');
  if (field('claims')) out.claims = Buffer.from(field('claims'), 'base64').toString('utf8');
  return out;
}

async function recordingFetch(input, init = {}) {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = (init.method || 'GET').toUpperCase();
  let form;
  if (typeof init.body === 'string' || init.body instanceof URLSearchParams) {
    const text = String(init.body);
    if (!text.startsWith('{')) form = Object.fromEntries(new URLSearchParams(text));
  }
  const response = await fetch(input, init);
  const header = response.headers.get('www-authenticate');
  events.push({ method, url, status: response.status, www_authenticate: header, form });
  if (header && config.step_up && url.startsWith(config.server_url)) {
    pendingStepUp = stepUpParams(header) ?? pendingStepUp;
  }
  return response;
}

class MemoryProvider {
  constructor() {
    this._tokens = undefined;
    this._client = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this._state = undefined;
    this.pendingCode = null;
  }
  get redirectUrl() { return config.redirect_uri; }
  get clientMetadataUrl() { return config.client_metadata_url || undefined; }
  get clientMetadata() {
    return {
      redirect_uris: [config.redirect_uri],
      client_name: config.client_name,
      grant_types: config.grant_types,
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { this._state = randomBytes(16).toString('base64url'); return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; }
  saveCodeVerifier(verifier) { this._verifier = verifier; }
  codeVerifier() { return this._verifier; }
  saveDiscoveryState(state) { this._discovery = state; }
  discoveryState() { return this._discovery; }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discovery = undefined;
  }
  async redirectToAuthorization(authorizationUrl) {
    const url = new URL(authorizationUrl);
    if (pendingStepUp) {
      for (const [name, value] of Object.entries(pendingStepUp)) url.searchParams.set(name, value);
      pendingStepUp = null;
    }
    events.push({ method: 'BROWSER', url: url.href });
    const response = await fetch(url, { redirect: 'manual' });
    const location = response.headers.get('location');
    if (![302, 303].includes(response.status) || !location) {
      throw new Error(`the IdP did not redirect back (HTTP ${response.status})`);
    }
    const back = new URL(location);
    const params = back.searchParams;
    if (params.get('error')) {
      throw new Error(`authorization refused: ${params.get('error')} (${params.get('error_description') || ''})`);
    }
    if (params.get('state') !== this._state) throw new Error('state mismatch');
    const issuer = this._discovery?.authorizationServerMetadata?.issuer;
    if (params.get('iss') && issuer && params.get('iss') !== issuer) throw new Error('iss mismatch');
    this.pendingCode = params.get('code');
  }
}

const provider = new MemoryProvider();
let transport;
let client;

function newTransport() {
  return new StreamableHTTPClientTransport(new URL(config.server_url), {
    authProvider: provider,
    fetch: recordingFetch,
  });
}

async function finishPendingAuth(error) {
  // The SDK stops at "REDIRECT" with an UnauthorizedError; the user came back with a code.
  if (!(error instanceof UnauthorizedError) || provider.pendingCode === null) return false;
  const code = provider.pendingCode;
  provider.pendingCode = null;
  await transport.finishAuth(code);
  return true;
}

async function connect() {
  for (let attempt = 0; attempt < 3; attempt++) {
    transport = newTransport();
    client = new Client({ name: config.client_name, version: '1.0.0' });
    try {
      await client.connect(transport);
      return { ok: true, protocol: transport.protocolVersion ?? null };
    } catch (error) {
      if (!(await finishPendingAuth(error))) throw error;
      // A started transport cannot connect again: the next attempt makes a new one.
    }
  }
  throw new Error('could not connect after three authorizations');
}

async function withAuthorization(action) {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await action();
    } catch (error) {
      if (!(await finishPendingAuth(error))) throw error;
    }
  }
  throw new Error('still unauthorized after three authorizations');
}

async function handle(command) {
  switch (command.op) {
    case 'connect':
      return connect();
    case 'call': {
      const result = await withAuthorization(() =>
        client.callTool({ name: command.name, arguments: command.arguments ?? {} }));
      return { ok: true, result };
    }
    case 'list': {
      const listed = await withAuthorization(() => client.listTools());
      return { ok: true, tools: listed.tools.map((tool) => tool.name) };
    }
    case 'state':
      return {
        ok: true,
        tokens: provider._tokens ?? null,
        client_information: provider._client ?? null,
        events: events.splice(0),
      };
    case 'forget_refresh_token':
      if (provider._tokens) delete provider._tokens.refresh_token;
      return { ok: true };
    case 'close':
      await client?.close();
      return { ok: true };
    default:
      return { ok: false, error: `unknown op ${command.op}` };
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  let answer;
  try {
    answer = await handle(command);
  } catch (error) {
    answer = { ok: false, error: String(error?.message ?? error), status: error?.code ?? null };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  if (command.op === 'close') break;
}
process.exit(0);
