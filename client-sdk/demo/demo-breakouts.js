// The demo's breakout rooms: a facilitator's panel (plan by count, by size or by hand, start with
// an optional duration, visit and return, move someone, broadcast, recall, help requests with
// their group) and everyone's view (the group's banner with a countdown, broadcasts, "Ask for
// help"). It reads only the SDK's client; the media follows from the SDK's participant events.
const $ = (id) => document.getElementById(id);
const main = '';

let ui;
let countdown;

/** A name from the facilitator's view of the breakouts (someone in another group writes to everyone). */
export function breakoutNameOf(client, id) {
  const state = client?.moderation.breakouts.state;
  const everyone = [...(state?.main ?? []), ...(state?.groups.flatMap((g) => g.members) ?? [])];
  return everyone.find((m) => m.participantId === id)?.name;
}

/** Wires the panel and the banner to `client`; `helpers`: the demo's `button`, `notice` and `nameOf`. */
export function setupBreakouts(client, helpers) {
  ui = { client, ...helpers };
  const render = () => renderAll();
  for (const event of ['breakoutStarted', 'movedToBreakout', 'breakoutEnded', 'breakoutsChanged'])
    client.on(event, render);
  client.on('participantJoined', render);
  client.on('participantLeft', render);
  client.on('connectionStateChanged', (state) => state === 'joined' && render());
  client.on('breakoutEnding', (_endsAt, secondsLeft) => {
    ui.notice(`Breakouts end in ${secondsLeft} s.`);
    renderBanner();
  });
  client.on('breakoutEnded', () => ui.notice('Everyone is back in the main room.'));
  client.on('broadcastReceived', ({ name, text, undecryptable }) => {
    $('broadcast').hidden = false;
    $('broadcast').textContent = `📣 ${name}: ${undecryptable ? '(could not be decrypted)' : text}`;
  });
  client.on('breakoutHelpRequested', ({ breakoutId, participantId }) =>
    ui.notice(`${ui.nameOf(participantId)} asks for help in ${groupName(breakoutId)}.`),
  );
  clearInterval(countdown);
  countdown = setInterval(renderBanner, 1_000);
}

const isFacilitator = () => ui.client.localParticipant?.role === 'facilitator';
const groupName = (id) => ui.client.moderation.breakouts.state?.groups.find((g) => g.id === id)?.name ?? id;
const run = (promise) => promise.catch((err) => ui.notice(err.message));

function renderAll() {
  if (ui.client.connectionState !== 'joined') return;
  renderBanner();
  $('ask-help').hidden = isFacilitator() || !ui.client.breakout.group;
  $('breakouts').hidden = !isFacilitator();
  if (isFacilitator()) renderPanel();
}

/** Everyone: where one is, and how long is left of a timed round. */
function renderBanner() {
  const { running, group, endsAt } = ui.client.breakout;
  const banner = $('breakout-banner');
  banner.hidden = !running;
  if (!running) {
    $('broadcast').hidden = true;
    return;
  }
  const where = group ? `You are in breakout ${group.name}` : 'Breakouts are running: you are in the main room';
  const left = endsAt === null ? '' : ` · ${clock(Math.max(0, endsAt - Date.now()))} left`;
  banner.textContent = where + left;
}

function clock(ms) {
  const s = Math.round(ms / 1_000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/* ---- The facilitator's panel ---------------------------------------------------------------- */

function renderPanel() {
  const state = ui.client.moderation.breakouts.state;
  if (!state) return;
  const { status } = state;
  $('breakouts-status').textContent =
    status === 'none' ? 'None planned.' : status === 'planned' ? 'Planned: change it, then start.' : 'Running.';
  $('breakouts-plan').hidden = status === 'running';
  $('breakouts-start').hidden = status !== 'planned';
  $('breakouts-running').hidden = status !== 'running';
  $('breakouts-return').hidden = !ui.client.breakout.group;
  $('breakouts-main-label').hidden = status === 'none';
  $('breakouts-groups').replaceChildren(...state.groups.map((g) => groupItem(state, g)));
  const unplaced = status === 'running' ? state.main : status === 'planned' ? unplanned(state) : [];
  $('breakouts-main').replaceChildren(
    ...unplaced.filter((m) => m.role !== 'facilitator').map((m) => memberItem(state, m, main)),
  );
  $('breakouts-main-label').textContent = status === 'running' ? 'Main room' : 'Not in a group';
  $('breakouts-help').replaceChildren(
    ...state.help.map(({ breakoutId, participantId }) => {
      const li = document.createElement('li');
      const text = document.createElement('span');
      text.textContent = `${groupName(breakoutId)}: ${ui.nameOf(participantId)} asks for help`;
      li.append(
        text,
        ui.button('Visit', () => ui.client.moderation.breakouts.visit(breakoutId)),
      );
      return li;
    }),
  );
}

/** While planned: who is in the session and in no planned group (the facilitator sees the main room). */
function unplanned(state) {
  const planned = new Set(state.groups.flatMap((g) => g.members.map((m) => m.participantId)));
  return [...ui.client.participants.values()]
    .filter((p) => !planned.has(p.id))
    .map((p) => ({ participantId: p.id, name: p.name, role: p.role }));
}

function groupItem(state, group) {
  const li = document.createElement('li');
  li.dataset.breakout = group.id;
  const head = document.createElement('div');
  head.className = 'row';
  const title = document.createElement('strong');
  title.textContent = group.name;
  head.append(title);
  if (state.status === 'running') {
    const here = ui.client.breakout.group?.id === group.id;
    if (!here) head.append(ui.button('Visit', () => ui.client.moderation.breakouts.visit(group.id)));
  }
  const members = document.createElement('ul');
  members.className = 'list';
  members.append(
    ...group.members
      .filter((m) => m.participantId !== ui.client.localParticipant?.id)
      .map((m) => memberItem(state, m, group.id)),
  );
  li.append(head, members);
  return li;
}

/** Someone in a group (or the main room), with where to put them; facilitators go by visiting. */
function memberItem(state, member, groupId) {
  const li = document.createElement('li');
  const name = document.createElement('span');
  name.textContent = member.role === 'facilitator' ? `${member.name} (facilitator)` : member.name;
  li.append(name);
  if (member.role === 'facilitator') return li;
  const select = document.createElement('select');
  select.setAttribute('aria-label', `Group for ${member.name}`);
  const mainLabel = state.status === 'running' ? 'Main room' : 'No group';
  for (const [value, label] of [[main, mainLabel], ...state.groups.map((g) => [g.id, g.name])]) {
    select.append(new Option(label, value, false, value === groupId));
  }
  select.addEventListener('change', () => run(place(state, member.participantId, select.value)));
  li.append(select);
  return li;
}

/** Puts someone in group `to` ('' for none): a move while running, a changed plan before. */
function place(state, participantId, to) {
  const { breakouts } = ui.client.moderation;
  if (state.status === 'running') return breakouts.move(participantId, to === main ? null : to);
  const groups = state.groups.map((g) => ({
    name: g.name,
    members: [
      ...g.members.map((m) => m.participantId).filter((id) => id !== participantId),
      ...(g.id === to ? [participantId] : []),
    ],
  }));
  return breakouts.update(groups);
}

/** The panel's forms and buttons (once, at start-up). */
export function wireBreakoutsPanel() {
  const breakouts = () => ui.client.moderation.breakouts;
  $('breakouts-plan').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const n = Number(form.get('n'));
    const by = form.get('by');
    const plan =
      by === 'hand'
        ? { groups: Array.from({ length: n }, (_, i) => ({ name: `Group ${i + 1}`, members: [] })) }
        : { [by]: n };
    run(breakouts().create(plan));
  });
  $('breakouts-start').addEventListener('submit', (event) => {
    event.preventDefault();
    const minutes = Number(new FormData(event.target).get('minutes'));
    run(breakouts().start(minutes > 0 ? { durationS: Math.round(minutes * 60) } : {}));
  });
  $('breakouts-broadcast').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = new FormData(event.target).get('text');
    if (text) run(breakouts().broadcast(text));
    event.target.reset();
  });
  $('breakouts-return').addEventListener('click', () => run(breakouts().visit(null)));
  $('breakouts-recall').addEventListener('click', () => run(breakouts().recall()));
  $('ask-help').addEventListener('click', () =>
    run(ui.client.askForHelp().then(() => ui.notice('The facilitators know your group asks for help.'))),
  );
}
