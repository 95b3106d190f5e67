import './style.css';
import { type Me, call, forgetToken, storeToken, storedToken, whenUnauthorized } from './api';
import { fleetPage } from './pages/fleet';
import { instancePage } from './pages/instance';
import { instancesPage } from './pages/instances';
import { overviewPage } from './pages/overview';
import type { Page, PageContext } from './pages/page';
import { signInPage } from './pages/signin';
import { setText } from './dom';

const REFRESH_KEY = 'vmdb.refreshSeconds';
const DEFAULT_REFRESH_SECONDS = 5;

const app = document.getElementById('app')!;
const nav = document.getElementById('nav')!;
const session = document.getElementById('session')!;
const who = document.getElementById('who')!;
const refreshed = document.getElementById('refreshed')!;
const errorBanner = document.getElementById('error')!;
const refreshSelect = document.getElementById('refresh-every') as HTMLSelectElement;

let me: Me | null = null;
let page: Page | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;
let running: Promise<void> | null = null;
let again = false;

function showError(message: string | null): void {
  errorBanner.hidden = message === null;
  setText(errorBanner, message ?? '');
}

function refreshSeconds(): number {
  const stored = Number(localStorage.getItem(REFRESH_KEY));
  return localStorage.getItem(REFRESH_KEY) !== null && Number.isFinite(stored) ? stored : DEFAULT_REFRESH_SECONDS;
}

/** Refreshes the page now (one refresh at a time; a request during one runs right after it), then re-arms the poll. */
function refreshNow(): void {
  clearTimeout(timer);
  if (running) {
    again = true;
    return;
  }
  const current = page;
  if (!current) return;
  running = current
    .refresh()
    .then(() => {
      if (page !== current) return; // the operator moved on meanwhile
      showError(null);
      document.body.dataset.refreshedAt = String(Date.now());
      setText(refreshed, `updated ${new Date().toLocaleTimeString()}`);
    })
    .catch((err: Error) => {
      if (me) showError(err.message);
    })
    .finally(() => {
      running = null;
      if (page !== current) return;
      if (again) {
        again = false;
        refreshNow();
        return;
      }
      const seconds = refreshSeconds();
      if (seconds > 0) timer = setTimeout(refreshNow, seconds * 1000);
    });
}

function route(): void {
  if (!me) return;
  const [path, search = ''] = location.hash.replace(/^#/, '').split('?');
  const ctx: PageContext = { me, query: new URLSearchParams(search), refreshNow };
  const instance = /^\/instances\/(\d+)$/.exec(path);
  const name = instance ? 'instance' : path === '/instances' ? 'instances' : path === '/fleet' ? 'fleet' : 'overview';
  page?.dispose?.();
  clearTimeout(timer);
  page = instance ? instancePage(ctx, Number(instance[1])) : name === 'instances' ? instancesPage(ctx) : name === 'fleet' ? fleetPage() : overviewPage(ctx);
  for (const link of nav.querySelectorAll<HTMLAnchorElement>('a')) link.classList.toggle('active', link.dataset.nav === (name === 'instance' ? 'instances' : name));
  document.body.dataset.page = name;
  delete document.body.dataset.refreshedAt; // set again once this page has its data
  app.replaceChildren(page.el);
  showError(null);
  refreshNow();
}

function signedIn(user: Me): void {
  me = user;
  nav.hidden = false;
  session.hidden = false;
  setText(who, `${user.name} · ${user.role}`);
  route();
}

function signOut(message: string): void {
  forgetToken();
  showSignIn(message);
}

function showSignIn(message: string): void {
  me = null;
  page?.dispose?.();
  page = null;
  clearTimeout(timer);
  nav.hidden = true;
  session.hidden = true;
  showError(null);
  document.body.dataset.page = 'signin';
  app.replaceChildren(
    signInPage(message, (token, user) => {
      storeToken(token);
      signedIn(user);
    }),
  );
}

whenUnauthorized((message) => signOut(message));
refreshSelect.value = String(refreshSeconds());
refreshSelect.addEventListener('change', () => {
  localStorage.setItem(REFRESH_KEY, refreshSelect.value);
  refreshNow();
});
document.getElementById('sign-out')!.addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', route);

async function start(): Promise<void> {
  if (!storedToken()) return signOut('Sign in with an operator token.');
  try {
    signedIn(await call<Me>('/me'));
  } catch (err) {
    // A refused token has already brought the form back; anything else is shown with it.
    if (!me && storedToken()) {
      showSignIn('The API did not answer; sign in again to retry.');
      showError((err as Error).message);
    }
  }
}

void start();
