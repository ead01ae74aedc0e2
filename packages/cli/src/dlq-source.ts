/** The DLQ walk moved to core (the console uses it too); re-exported for the CLI's own modules. */
export { type TransportDeadLetter, walkTransportDeadLetters } from '@switchboard/core';
