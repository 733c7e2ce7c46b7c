/** The seam between relays (`Bus`), the base every implementation extends, its packet format, and the in-memory bus. */
export type { Bus, BusEvent, BusHealth, BusLimits, BusOrigin, BusState, BusStatusEvent, BusTopicMessage, MapHint, Unsubscribe } from './bus'
export { BUS_TRANSITIONS, busTransition } from './bus-state'
export type { BusConnectionEvent, BusTransition } from './bus-state'
export { BusBase } from './bus-base'
export type { BusBaseOptions } from './bus-base'
export { BUS_PACKET_VERSION, DEFAULT_BUS_MESSAGE_BYTES, MAX_BUS_NAME_LENGTH, MAX_NODE_LENGTH, MAX_PUBLISHER_LENGTH, assertBusEvent, assertHints, assertTopicMessage, busMessageBytes, decodeBusPacket, encodeBusItem, encodeBusPacket } from './frame'
export type { BusItem, BusPacket } from './frame'
export { MemoryBus, MemoryBusHub } from './memory-bus'
