// Pure decisions of the Device Trust extension: no chrome.* API, no network, no clock of its own.
// service_worker.js does the I/O; tests/test_browser_extension_core.py runs these functions in Node.

export const REQUEST_TYPE = "device-trust:get-credentials";
export const CREDENTIALS_TYPE = "device-trust:credentials";
export const ERROR_TYPE = "device-trust:error";

// Fetch new credentials this long before the cached ones expire.
export const REFRESH_MARGIN_MS = 5 * 60 * 1000;
// After a failed fetch, answer with the same error for this long instead of asking the endpoint again.
export const FAILURE_BACKOFF_MS = 5 * 1000;

const HOST_PORT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/;
const ROLE_ALIAS = /^[\w=,@-]{1,128}$/;
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);
// A DNS name or IPv4 address (letters, digits, '-', '.'), or a bracketed IPv6 address: no wildcards.
const ORIGIN_HOST = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$/;

export class ConfigError extends Error {}

// The canonical origin of an allowed-origin setting, or null when it is not an acceptable origin:
// https with any host, or http only on loopback; no path, query, fragment or credentials.
export function canonicalOrigin(value) {
  if (typeof value !== "string") return null;
  let url;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.username || url.password || url.search || url.hash) return null;
  if (!ORIGIN_HOST.test(url.hostname)) return null;
  if (url.pathname !== "/" && url.pathname !== "") return null;
  if (value.replace(/\/$/, "").toLowerCase() !== url.origin) return null; // already canonical, e.g. no :443
  if (url.protocol === "https:") return url.origin;
  if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) return url.origin;
  return null;
}

// Validates the managed configuration (chrome.storage.managed) and returns a frozen copy;
// throws ConfigError naming the first setting that is missing or wrong.
export function parseConfig(managed) {
  const config = managed || {};
  if (typeof config.credentialsEndpoint !== "string" || !HOST_PORT.test(config.credentialsEndpoint)) {
    throw new ConfigError("credentialsEndpoint is missing or not host[:port]");
  }
  if (typeof config.roleAlias !== "string" || !ROLE_ALIAS.test(config.roleAlias)) {
    throw new ConfigError("roleAlias is missing or invalid");
  }
  if (config.thingName !== undefined && (typeof config.thingName !== "string" || !THING_NAME.test(config.thingName))) {
    throw new ConfigError("thingName is invalid");
  }
  const origins = Array.isArray(config.allowedOrigins) ? config.allowedOrigins : [];
  const allowedOrigins = [];
  for (const origin of origins) {
    const canonical = canonicalOrigin(origin);
    // A malformed entry allows nothing; it never widens the list.
    if (canonical !== null) allowedOrigins.push(canonical);
  }
  return Object.freeze({
    credentialsEndpoint: config.credentialsEndpoint.toLowerCase(),
    roleAlias: config.roleAlias,
    thingName: config.thingName,
    allowedOrigins: Object.freeze(allowedOrigins),
  });
}

// Whether a message sender may receive credentials. `sender` is the runtime.MessageSender that
// Chrome fills in: its origin is the frame's origin as the browser knows it, not anything a page said.
export function senderAllowed(sender, config, extensionId) {
  if (!sender || sender.id !== extensionId) return false; // only our own content scripts
  if (!sender.tab || sender.frameId !== 0) return false; // top-level frames of tabs only
  if (typeof sender.origin !== "string" || sender.origin === "null") return false;
  return config.allowedOrigins.includes(sender.origin);
}

// Whether the credentials endpoint (host[:port]) is one the manifest's host_permissions name, read as
// Chrome reads match patterns: https only, "*.suffix" also covers "suffix" itself, no port = any port.
// Chrome lets the service worker fetch from every host its content scripts match (all https pages here),
// so host_permissions alone would not keep it to the credentials endpoints: this check does.
export function endpointPermitted(credentialsEndpoint, hostPermissions) {
  if (typeof credentialsEndpoint !== "string" || !HOST_PORT.test(credentialsEndpoint)) return false;
  const host = credentialsEndpoint.toLowerCase().replace(/:[0-9]+$/, "");
  for (const pattern of Array.isArray(hostPermissions) ? hostPermissions : []) {
    const match = /^https:\/\/(\*\.)?([a-z0-9.-]+)\/\*$/.exec(typeof pattern === "string" ? pattern : "");
    if (!match) continue;
    const [, wildcard, patternHost] = match;
    if (host === patternHost || (wildcard && host.endsWith(`.${patternHost}`))) return true;
  }
  return false;
}

export function credentialsUrl(config) {
  return `https://${config.credentialsEndpoint}/role-aliases/${encodeURIComponent(config.roleAlias)}/credentials`;
}

export function requestHeaders(config) {
  return config.thingName ? { "x-amzn-iot-thingname": config.thingName } : {};
}

// The credentials provider's 200 body -> the credentials handed to pages.
export function parseCredentialsBody(body) {
  const c = body && body.credentials;
  const fields = ["accessKeyId", "secretAccessKey", "sessionToken", "expiration"];
  if (!c || fields.some((f) => typeof c[f] !== "string" || !c[f])) {
    throw new Error("the credentials endpoint returned an unexpected body");
  }
  const expiresAt = Date.parse(c.expiration);
  if (Number.isNaN(expiresAt)) throw new Error("the credentials endpoint returned an unreadable expiration");
  return {
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    sessionToken: c.sessionToken,
    expiration: new Date(expiresAt).toISOString(),
  };
}

export function stillFresh(credentials, nowMs) {
  return Boolean(credentials) && Date.parse(credentials.expiration) - REFRESH_MARGIN_MS > nowMs;
}

// An error response from the credentials provider (status + its {"message"} body) -> the error object pages get.
export function refusalError(status, bodyText) {
  let message = "";
  try {
    const parsed = JSON.parse(bodyText);
    if (parsed && typeof parsed.message === "string") message = parsed.message;
  } catch {
    // not JSON: keep the status only
  }
  const code = status >= 400 && status < 500 ? "credentials-refused" : "endpoint-error";
  const detail = message ? `: ${message.slice(0, 200)}` : "";
  return { code, message: `the credentials endpoint answered ${status}${detail}` };
}

export function networkError(cause) {
  const reason = cause && cause.message ? cause.message : String(cause);
  return {
    code: "network-error",
    message: `the credentials endpoint could not be reached or refused the TLS handshake (${reason.slice(0, 200)})`,
  };
}

export function endpointNotPermittedError(credentialsEndpoint) {
  return {
    code: "endpoint-not-permitted",
    message: `this extension may not fetch from ${credentialsEndpoint}: its manifest's host_permissions do not name it`,
  };
}

export function notConfiguredError(cause) {
  return { code: "not-configured", message: `the extension's managed configuration is incomplete: ${cause.message}` };
}

// A page's request id is echoed back; only short strings and finite numbers are accepted.
export function validRequestId(id) {
  return (typeof id === "string" && id.length <= 128) || (typeof id === "number" && Number.isFinite(id));
}
