export * from './codes.js';
export type * from './frames.js';
