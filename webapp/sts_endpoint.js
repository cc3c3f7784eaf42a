// Where the demo page may send its signed STS request, which carries the session token: an AWS STS
// endpoint, or a loopback http URL (the local stand-in). Pure: no DOM, so Node tests call it as is
// (tests/test_browser_webapp.py). The page's Content-Security-Policy (index.html, connect-src) names the
// same hosts, so a bypass of this check would still be refused by the browser.

// An AWS Region name: us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ...
export const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d$/;
export const DEFAULT_REGION = "us-east-1";
// The global endpoint; requests to it are signed for us-east-1.
const GLOBAL_STS_HOST = "sts.amazonaws.com";
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost"]);
const REGIONAL_STS_HOST = /^sts\.([a-z0-9-]+)\.(amazonaws\.com(?:\.cn)?)$/;

function refused(message) {
  return { code: "bad-setting", message };
}

// The DNS suffix of a Region's partition: China's Regions are on amazonaws.com.cn.
function dnsSuffix(region) {
  return region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
}

export function regionalEndpoint(region) {
  return `https://sts.${region}.${dnsSuffix(region)}/`;
}

// {region, sts} from the page's query string (?region=...&sts=...), or throws {code: "bad-setting", message}.
// sts is normalised to "<origin>/", the URL the request is posted to.
export function stsSettings(search) {
  const params = new URLSearchParams(search);
  const regionParam = params.get("region");
  const stsParam = params.get("sts");
  if (regionParam !== null && !REGION_PATTERN.test(regionParam)) {
    throw refused(`region ${JSON.stringify(regionParam)} is not an AWS Region name such as eu-west-1`);
  }
  if (stsParam === null) {
    const region = regionParam || DEFAULT_REGION;
    return { region, sts: regionalEndpoint(region) };
  }
  const notAllowed = refused(`sts ${JSON.stringify(stsParam)} is not allowed: use https://sts.amazonaws.com, ` +
    "https://sts.<region>.amazonaws.com (.com.cn in China) or a loopback http://127.0.0.1:<port> / " +
    "http://localhost:<port>, with no path, query or user");
  let url;
  try {
    url = new URL(stsParam);
  } catch {
    throw notAllowed;
  }
  if (url.username || url.password || url.search || url.hash || url.pathname !== "/") throw notAllowed;
  if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) {
    return { region: regionParam || DEFAULT_REGION, sts: `${url.origin}/` };
  }
  if (url.protocol !== "https:" || url.port !== "") throw notAllowed;
  if (url.hostname === GLOBAL_STS_HOST) {
    const region = regionParam || DEFAULT_REGION;
    if (region !== DEFAULT_REGION) {
      throw refused(`the global endpoint https://${GLOBAL_STS_HOST} takes requests signed for ${DEFAULT_REGION}, ` +
        `not ${region}: use ${regionalEndpoint(region)}`);
    }
    return { region, sts: `${url.origin}/` };
  }
  const match = REGIONAL_STS_HOST.exec(url.hostname);
  if (!match || !REGION_PATTERN.test(match[1]) || match[2] !== dnsSuffix(match[1])) throw notAllowed;
  const region = match[1];
  if (regionParam !== null && regionParam !== region) {
    throw refused(`sts ${url.origin} is the endpoint of ${region}, but region is ${regionParam}`);
  }
  return { region, sts: `${url.origin}/` };
}
