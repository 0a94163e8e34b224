export { startHerald, buildApp, HERALD_VERSION, type HeraldServer, type StartOptions } from './server.js';
export { resolveConfig, configFromEnv, configFromAssignments, readConfigFile, ConfigError, type HeraldConfig, type DeepPartial } from './config.js';
export { HeraldNode, type PublishRequest, type PublishResult } from './node.js';
export { HeraldError, ERRORS } from './errors.js';
export type { Broker, Dispatch, HistoryResult, HistoryQuery } from './engine/broker.js';
export type { PresenceStore, ConnectionInfo } from './engine/presence.js';
export { MemoryBroker } from './engine/memory/broker.js';
export { MemoryPresence } from './engine/memory/presence.js';
export { installProcessFaultPolicy, FAULT_EXIT_CODE, type ProcessFaultPolicy } from './process-policy.js';
