export * from "./api.js";
export * from "./canonical.js";
export * from "./digest.js";
export * from "./limits.js";
export * from "./snapshot.js";
export * from "./version.js";
export * from "./snapshot-read.js";
export * from "./service.js";
