// The entry of a line-checking worker thread (see checkers.ts): checks the blocks it is sent.
import { parentPort, workerData } from 'node:worker_threads';
import { type BlockResult, blockChecker, type CheckOptions } from './check.js';

/** A block to check: its bytes (transferred) and the number of its first line. */
export interface CheckRequest {
  id: number;
  bytes: Uint8Array;
  firstLine: number;
}

/** The answer to a request: its result, or why the check itself failed. */
export type CheckResponse = { id: number; result: BlockResult } | { id: number; error: string };

const check = blockChecker(workerData as CheckOptions);
parentPort?.on('message', ({ id, bytes, firstLine }: CheckRequest) => {
  let response: CheckResponse;
  try {
    response = {
      id,
      result: check(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), firstLine),
    };
  } catch (error) {
    response = { id, error: (error as Error).stack ?? String(error) };
  }
  parentPort?.postMessage(response);
});
