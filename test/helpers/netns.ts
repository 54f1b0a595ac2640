/** The network namespaces of the tests are the network bench's (bench/netns.ts). */
export { createNetns, type Netns } from '../../bench/netns.ts';
