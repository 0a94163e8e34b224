/** Herald's version, as the OpenAPI document, the CLI and node heartbeats report it. */
export const HERALD_VERSION = '0.1.0';
