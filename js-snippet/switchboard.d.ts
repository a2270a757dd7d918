// Types for Switchboard's browser snippet (dni.js): window.switchboard and the dataLayer event.
//
// Include this file in your TypeScript program (tsconfig "include"/"files", or
// `/// <reference path="switchboard.d.ts" />`), then:
//
//   window.switchboard?.consent();
//   const shown = window.switchboard?.number; // "+14155550123" | null | undefined

/** The snippet's only global. Absent until dni.js (loaded async) has run. */
export interface Switchboard {
  /** The tracking number shown on the page (E.164), or null while the page's own numbers are shown. */
  readonly number: string | null;
  /** The visitor's session id, or null before the service answered or when it keeps no session. */
  readonly session: string | null;
  /** Scans the whole page again now (synchronously). Content added later is swapped without it. */
  swap(): void;
  /**
   * Starts the snippet when it is embedded with data-consent="required": until then it reads no
   * storage and sends nothing. Does nothing otherwise, or when called again.
   */
  consent(): void;
}

/** Pushed to window.dataLayer (when it is an array) each time the service answers a new number. */
export interface SwitchboardNumberEvent {
  event: 'switchboard_number';
  /** E.164 */
  number: string;
  /** The visit's channel as classified by the service, e.g. "Paid Search", "Direct". */
  channel: string;
}

declare global {
  interface Window {
    switchboard?: Switchboard;
  }
}
