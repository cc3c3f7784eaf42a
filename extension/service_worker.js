// Device Trust service worker: fetches AWS credentials from the AWS IoT credentials provider with the
// device certificate (Chrome picks it through the AutoSelectCertificateForUrls policy) and answers
// content scripts running in top-level pages of allowed origins. Credentials live in memory only.
import {
  CREDENTIALS_TYPE,
  ERROR_TYPE,
  FAILURE_BACKOFF_MS,
  REQUEST_TYPE,
  credentialsUrl,
  endpointNotPermittedError,
  endpointPermitted,
  networkError,
  notConfiguredError,
  parseConfig,
  parseCredentialsBody,
  refusalError,
  requestHeaders,
  senderAllowed,
  stillFresh,
} from "./credentials_core.js";

let cached = null; // {key, credentials}: the last credentials, for the configuration they came from
let lastFailure = null; // {key, error, at}
let inFlight = null; // {key, promise}: one fetch at a time per configuration

async function loadConfig() {
  return parseConfig(await chrome.storage.managed.get(null));
}

function configKey(config) {
  return `${config.credentialsEndpoint}|${config.roleAlias}|${config.thingName || ""}`;
}

async function fetchCredentials(config) {
  let response;
  try {
    response = await fetch(credentialsUrl(config), {
      method: "GET",
      headers: requestHeaders(config),
      // The credentials mode decides whether Chrome may present a client certificate at all: with
      // "omit" Chromium still does today only because of a long-standing bug (crbug.com/775438), and
      // it has a privacy mode that sends no client certificates. "include" asks for them outright;
      // Chrome picks the device certificate in the TLS handshake by the AutoSelectCertificateForUrls
      // policy (tests/test_browser_extension.py checks it does). The endpoint sets no cookies.
      credentials: "include",
      cache: "no-store",
      redirect: "error",
    });
  } catch (cause) {
    return { error: networkError(cause) };
  }
  const text = await response.text();
  if (!response.ok) return { error: refusalError(response.status, text) };
  try {
    return { credentials: parseCredentialsBody(JSON.parse(text)) };
  } catch (cause) {
    return { error: { code: "endpoint-error", message: cause.message } };
  }
}

async function credentialsFor(config) {
  const key = configKey(config);
  const now = Date.now();
  if (cached && cached.key === key && stillFresh(cached.credentials, now)) return { credentials: cached.credentials };
  if (lastFailure && lastFailure.key === key && now - lastFailure.at < FAILURE_BACKOFF_MS) {
    return { error: lastFailure.error };
  }
  if (!inFlight || inFlight.key !== key) {
    const promise = fetchCredentials(config).then((result) => {
      if (result.credentials) {
        cached = { key, credentials: result.credentials };
        lastFailure = null;
      } else {
        cached = null;
        lastFailure = { key, error: result.error, at: Date.now() };
      }
      return result;
    });
    inFlight = { key, promise };
    promise.finally(() => {
      if (inFlight && inFlight.promise === promise) inFlight = null;
    });
  }
  return inFlight.promise;
}

async function answer(sender) {
  let config;
  try {
    config = await loadConfig();
  } catch (cause) {
    // Without a valid configuration no origin is allowed, so nobody learns why.
    return null;
  }
  if (!senderAllowed(sender, config, chrome.runtime.id)) return null; // other origins get nothing
  // Only the endpoints the manifest names (the shipped one: AWS IoT's credentials provider; the stand-in
  // variant: also https://localhost), whatever else Chrome would let the worker reach.
  if (!endpointPermitted(config.credentialsEndpoint, chrome.runtime.getManifest().host_permissions)) {
    return { type: ERROR_TYPE, error: endpointNotPermittedError(config.credentialsEndpoint) };
  }
  const result = await credentialsFor(config);
  if (result.credentials) return { type: CREDENTIALS_TYPE, credentials: result.credentials };
  return { type: ERROR_TYPE, error: result.error };
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!message || message.type !== REQUEST_TYPE) return false;
  answer(sender).then(sendResponse, () => sendResponse(null));
  return true; // the response is sent asynchronously
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === "managed") {
    cached = null;
    lastFailure = null;
  }
});
