// Demo web application: asks the Device Trust extension for credentials over window.postMessage and
// calls STS GetCallerIdentity with them, signed in the page by aws4fetch (vendored from npm).
//
// Query parameters: ?sts=<STS endpoint URL> (default https://sts.<region>.amazonaws.com), ?region=<region>
// (default us-east-1), ?auto=1 to ask as soon as the page loads. The page sends the signed request and the
// session token to the STS endpoint, so only AWS STS endpoints and loopback http URLs (the local stand-in)
// are accepted (sts_endpoint.js); anything else stops the page before it asks the extension.
import { AwsClient } from "./vendor/aws4fetch.esm.mjs";
import { stsSettings } from "./sts_endpoint.js";

const REQUEST_TYPE = "device-trust:get-credentials";

// Ask the extension once. Resolves with the credentials, rejects with {code, message}. When this
// page's origin is not allowed the extension does not answer at all, so the only signal is the timeout.
export function requestCredentials({ timeoutMs = 10000 } = {}) {
  const id = crypto.randomUUID();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      window.removeEventListener("message", onMessage);
      reject({ code: "no-answer", message: `no answer from the Device Trust extension within ${timeoutMs} ms` });
    }, timeoutMs);
    function onMessage(event) {
      if (event.source !== window || event.origin !== window.location.origin) return;
      const data = event.data;
      if (!data || data.id !== id) return;
      if (data.type === "device-trust:credentials") {
        finish();
        resolve(data.credentials);
      } else if (data.type === "device-trust:error") {
        finish();
        reject(data.error);
      }
    }
    function finish() {
      clearTimeout(timer);
      window.removeEventListener("message", onMessage);
    }
    window.addEventListener("message", onMessage);
    window.postMessage({ type: REQUEST_TYPE, id }, window.location.origin);
  });
}

// {region, sts} checked by stsSettings; throws {code: "bad-setting", message}.
function settings() {
  return stsSettings(window.location.search);
}

export async function getCallerIdentity(credentials, { sts, region }) {
  const aws = new AwsClient({
    accessKeyId: credentials.accessKeyId,
    secretAccessKey: credentials.secretAccessKey,
    sessionToken: credentials.sessionToken,
    service: "sts",
    region,
  });
  const response = await aws.fetch(sts, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    body: "Action=GetCallerIdentity&Version=2011-06-15",
  });
  const text = await response.text();
  if (!response.ok) throw { code: "sts-error", message: `STS answered ${response.status}: ${text.slice(0, 300)}` };
  const xml = new DOMParser().parseFromString(text, "application/xml");
  const field = (name) => (xml.getElementsByTagName(name)[0] || {}).textContent || "";
  return { arn: field("Arn"), account: field("Account"), userId: field("UserId") };
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function setStatus(state, text) {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = text;
}

// The whole demo: credentials from the extension, then STS. Returns what it showed (no secrets).
export async function run({ timeoutMs } = {}) {
  try {
    const config = settings();
    show("sts-endpoint", config.sts);
    setStatus("busy", "Asking the extension...");
    const credentials = await requestCredentials({ timeoutMs });
    show("access-key-id", credentials.accessKeyId);
    show("expiration", credentials.expiration);
    setStatus("busy", "Calling STS GetCallerIdentity...");
    const identity = await getCallerIdentity(credentials, config);
    show("arn", identity.arn);
    show("account", identity.account);
    setStatus("ok", "Signed in with this laptop's certificate.");
    return { ok: true, accessKeyId: credentials.accessKeyId, expiration: credentials.expiration, ...identity };
  } catch (error) {
    const code = (error && error.code) || "page-error";
    const message = (error && error.message) || String(error);
    setStatus("error", `${code}: ${message}`);
    return { ok: false, error: { code, message } };
  }
}

window.deviceTrustDemo = { run, requestCredentials };
document.getElementById("ask").addEventListener("click", () => run());
if (new URLSearchParams(window.location.search).get("auto") === "1") run();
