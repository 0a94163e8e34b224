export * from './codes.js';
export * from './errors.js';
export type * from './frames.js';
export type * from './http-api.js';
