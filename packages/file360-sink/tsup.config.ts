export { default } from '../../tsup.connector';
