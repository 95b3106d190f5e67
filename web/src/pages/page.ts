import type { Me } from '../api';

/** One page of the dashboard: built once, then refreshed in place by the poller. */
export interface Page {
  el: HTMLElement;
  /** Reads the API again and updates what is shown; rejects with the API's error. */
  refresh(): Promise<void>;
  dispose?(): void;
}

export interface PageContext {
  me: Me;
  /** The query part of the location hash (`#/instances?Status=Running`). */
  query: URLSearchParams;
  /** Ask for an immediate refresh (after an action). */
  refreshNow(): void;
}
