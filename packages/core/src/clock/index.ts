/** The hybrid logical clock and its stamp encoding. */
export { Hlc, MAX_COUNTER, MAX_WALL, MAX_REPLICA_ID_LENGTH, encodeStamp, decodeStamp, isStamp, compareStamps, maxStamp, stampReplica } from './hlc'
export type { HlcOptions, StampParts } from './hlc'
