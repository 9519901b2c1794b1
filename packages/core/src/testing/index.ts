export {
  type CliRun,
  hasStackTrace,
  jsonLines,
  type RunCliOptions,
  type RunningCli,
  runCli,
  startCli,
  taskLines,
} from './cli.js';
export { type FaultProxy, type FaultRule, startFaultProxy } from './fault-proxy.js';
export {
  type SinkFixture,
  type SinkHarness,
  type SinkSuiteOptions,
  sampleExport,
  testSink,
  testSinkBadInput,
  testSinkFilters,
  testSinkIdempotence,
  testSinkWrite,
} from './sink-suites.js';
export {
  collect,
  freePort,
  type SourceFixture,
  type SourceHarness,
  type SourceSuiteOptions,
  TINY_PNG,
  testSource,
  testSourceChanges,
  testSourceConvert,
  testSourceList,
  testSourceMedia,
  testSourceSelect,
  testSourceState,
  testSourceWatch,
} from './source-suites.js';
