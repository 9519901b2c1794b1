export {
  esc,
  type Input,
  marker,
  type PublishOptions,
  publishPage,
  renderTitle,
} from './publish.js';
export {
  DEFAULT_REPORT_TITLE,
  publishReport,
  type ReportOptions,
  type ReportResult,
  reportBody,
} from './report.js';
export {
  DEFAULT_REVIEW_TITLE,
  publishReview,
  REVIEW_ATTACHMENT,
  type ReviewOptions,
  type ReviewResult,
} from './review.js';
