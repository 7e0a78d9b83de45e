"use strict";
// The bundle's stand-in for `import { errors, request } from "undici"` (cli/build-entry.mjs aliases it; the
// TypeScript source, tests and MockAgent use undici itself). undici's index loads fetch, WebSocket, caches, mocks
// and interceptors with zlib, dns and worker_threads: ~55 ms of a 250 ms command for code the CLI never calls.
// This takes the same request() from undici's own modules, as undici's index builds it (makeDispatcher).
const request = require("undici/lib/api/api-request.js");
const errors = require("undici/lib/core/errors.js");
const util = require("undici/lib/core/util.js");
const { getGlobalDispatcher } = require("undici/lib/global.js");

module.exports.errors = errors;
module.exports.request = function (url, opts = {}) {
  const target = util.parseURL(url);
  const { dispatcher = getGlobalDispatcher(), ...rest } = opts;
  return request.call(dispatcher, {
    ...rest,
    origin: target.origin,
    path: target.search ? `${target.pathname}${target.search}` : target.pathname,
    method: rest.method || (rest.body ? "PUT" : "GET"),
  });
};
