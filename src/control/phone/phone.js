// The ShardPBX demo softphone (/phone): JsSIP over a SIP WebSocket, one call
// at a time, audio only. Plain script, no build step; loaded after
// jssip.min.js (the global `JsSIP`).
//
// Parts, top to bottom:
//   - state and view: the words a person (and a test) sees, the buttons;
//   - settings: the form's defaults from /phone/settings.json;
//   - registration: the JsSIP UA (log in = REGISTER with digest);
//   - call: the one RTCSession (dial, answer, decline, hang up, mute);
//   - media: the remote audio element, RTP statistics, tone analysis;
//   - window.phone: the API browser tests use.
//
// Every state word is fixed and lowercase:
//   registration: "unregistered", "registering", "registered", "failed: <cause>"
//   call: "idle", "calling", "early", "ringing", "in call", "ended: <cause>"
// where <cause> is JsSIP's cause, lowercased ("terminated", "canceled",
// "busy", "rejected", "authentication error", "connection error", ...).
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // Media settings of every call: the PBX is an ICE-lite relay with a
  // public address, so no STUN/TURN; one bundled, RTCP-muxed audio stream.
  const PC_CONFIG = {
    iceServers: [],
    rtcpMuxPolicy: 'require',
    bundlePolicy: 'max-bundle',
  };
  // `?raw-audio` turns the microphone's echo cancellation, noise
  // suppression and gain control off (for tests that measure tone levels:
  // noise suppression takes ~15 dB off a steady tone); a person wants them.
  const query = new URLSearchParams(location.search);
  const RAW_AUDIO = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  const MEDIA = { audio: query.has('raw-audio') ? RAW_AUDIO : true, video: false };
  // `?codecs=opus` (a comma list of encoding names) offers and answers
  // with those codecs only: to see the PBX transcode for a G.711 peer.
  const CODECS = (query.get('codecs') || '').split(',').map((c) => c.trim().toLowerCase()).filter(Boolean);

  // `sdp` with the audio section's codecs limited to CODECS (its other
  // payload types and their rtpmap, fmtp and rtcp-fb lines dropped).
  function onlyCodecs(sdp) {
    const lines = sdp.split('\r\n');
    const keep = new Set();
    for (const l of lines) {
      const m = /^a=rtpmap:(\d+) ([^/]+)\//.exec(l);
      if (m && CODECS.includes(m[2].toLowerCase())) keep.add(m[1]);
    }
    return lines
      .filter((l) => {
        const m = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)/.exec(l);
        return !m || keep.has(m[2]);
      })
      .map((l) => {
        const m = /^(m=audio \d+ \S+)((?: \d+)+)$/.exec(l);
        return m ? m[1] + m[2].split(' ').filter((pt) => pt === '' || keep.has(pt)).join(' ') : l;
      })
      .join('\r\n');
  }

  // ---------------------------------------------------------------- state

  // What the page shows. `peer` is the other party's SIP URI.
  const state = { reg: 'unregistered', call: 'idle', muted: false, peer: '' };
  let ua = null; // the JsSIP UA while logged in
  let session = null; // the call in progress, if any
  let remoteStream = null; // the call's remote audio

  function snapshot() {
    return { reg: state.reg, call: state.call, muted: state.muted, peer: state.peer };
  }

  // Tells listeners (the browser test driver) of a change: a `phone-state`
  // event on window whose detail is the state and what changed.
  function announce(changed) {
    const detail = Object.assign({ changed }, snapshot());
    window.dispatchEvent(new CustomEvent('phone-state', { detail }));
  }

  function setReg(word) {
    if (state.reg === word) return;
    state.reg = word;
    log('registration: ' + word);
    render();
    announce('reg');
  }

  function setCall(word) {
    if (state.call === word) return;
    state.call = word;
    log('call: ' + word);
    render();
    announce('call');
  }

  function setMuted(muted) {
    if (state.muted === muted) return;
    state.muted = muted;
    render();
    announce('muted');
  }

  // ----------------------------------------------------------------- view

  // Brings texts and buttons in line with the state.
  function render() {
    const reg = $('reg-state');
    reg.textContent = state.reg;
    reg.className = 'state ' + stateClass(state.reg, 'registered');

    const call = $('call-state');
    call.textContent = state.call;
    call.className = 'state ' + stateClass(state.call, 'in call');
    $('peer').textContent = state.peer && session ? state.peer : '';

    const ringing = state.call === 'ringing';
    $('incoming').hidden = !ringing;
    $('incoming-from').textContent = ringing ? state.peer : '';
    $('answer-button').disabled = !ringing;
    $('decline-button').disabled = !ringing;

    $('unregister-button').disabled = !ua;
    $('dial-button').disabled = !(state.reg === 'registered' && !session);
    $('hangup-button').disabled = !session;
    $('mute-button').disabled = state.call !== 'in call';
    $('mute-button').textContent = state.muted ? 'Unmute' : 'Mute';
    $('mute-state').textContent = state.muted ? 'muted' : 'unmuted';
  }

  function stateClass(word, good) {
    if (word === good) return 'ok';
    return word.startsWith('failed') || word.startsWith('ended') ? 'bad' : '';
  }

  // A line in the page's log (newest last, the last 100 kept).
  function log(text) {
    const list = $('log');
    const item = document.createElement('li');
    item.textContent = new Date().toISOString().slice(11, 23) + ' ' + text;
    list.appendChild(item);
    while (list.children.length > 100) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  // The lowercase word of a JsSIP cause.
  function causeWord(cause, fallback) {
    return String(cause || fallback).toLowerCase();
  }

  // ------------------------------------------------------------- settings

  // Fills the server and domain fields from /phone/settings.json
  // ({wss_port, ws_port, realm}) unless they hold something already.
  async function loadSettings() {
    let settings = {};
    try {
      const reply = await fetch('/phone/settings.json', { cache: 'no-store' });
      settings = await reply.json();
    } catch (e) {
      log('no settings: ' + e);
    }
    if (!$('server-url').value) $('server-url').value = defaultServer(settings);
    if (!$('realm').value) $('realm').value = settings.realm || location.hostname;
  }

  // WSS on this page's host when the PBX has it, else plain WS, else "".
  function defaultServer(settings) {
    let host = location.hostname;
    if (host.includes(':') && !host.startsWith('[')) host = '[' + host + ']';
    if (settings.wss_port) return 'wss://' + host + ':' + settings.wss_port;
    if (settings.ws_port) return 'ws://' + host + ':' + settings.ws_port;
    return '';
  }

  // --------------------------------------------------------- registration

  // "Register": a new UA for the form's credentials (any old one stopped).
  function register(event) {
    event.preventDefault();
    stopUa();
    const extension = $('extension').value.trim();
    const password = $('password').value;
    const url = $('server-url').value.trim();
    const realm = $('realm').value.trim() || location.hostname;
    let socket;
    try {
      socket = new JsSIP.WebSocketInterface(url);
    } catch (e) {
      setReg('failed: invalid server url');
      return;
    }
    let next;
    try {
      next = new JsSIP.UA({
        sockets: [socket],
        uri: 'sip:' + extension + '@' + realm,
        authorization_user: extension,
        password: password,
        register: true,
        session_timers: false,
        user_agent: 'ShardPBX phone (JsSIP ' + JsSIP.version + ')',
      });
    } catch (e) {
      setReg('failed: invalid ' + (e.parameter || 'configuration'));
      return;
    }
    ua = next;
    watchUa(next, url);
    setReg('registering');
    next.start();
  }

  // "Unregister": unREGISTER and close the socket.
  function unregister() {
    stopUa();
    setReg('unregistered');
  }

  function stopUa() {
    const old = ua;
    ua = null;
    if (old) old.stop(); // ends a call in progress too
    render();
  }

  // The UA's events; those of a UA that was since replaced are ignored.
  function watchUa(me, url) {
    const current = () => ua === me;
    me.on('connecting', () => current() && log('connecting to ' + url));
    me.on('connected', () => {
      if (!current()) return;
      log('connected');
      if (state.reg.startsWith('failed')) setReg('registering');
    });
    me.on('disconnected', (e) => {
      if (!current()) return;
      log('disconnected' + (e && e.code ? ' (' + e.code + ')' : ''));
      setReg('failed: connection error'); // JsSIP retries; registered again then
    });
    me.on('registered', () => current() && setReg('registered'));
    me.on('unregistered', () => current() && setReg('unregistered'));
    me.on('registrationFailed', (e) => {
      if (!current()) return;
      if (e.response) log('REGISTER: ' + e.response.status_code + ' ' + e.response.reason_phrase);
      setReg('failed: ' + causeWord(e.cause, 'error'));
    });
    me.on('newRTCSession', (e) => current() && onNewSession(e));
  }

  // ----------------------------------------------------------------- call

  function callOptions() {
    return {
      mediaConstraints: MEDIA,
      pcConfig: PC_CONFIG,
      rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
    };
  }

  // "Call": an INVITE to the number (or SIP URI) typed.
  function dial(event) {
    event.preventDefault();
    const target = $('dial-target').value.trim();
    if (!ua || session || !target) return;
    try {
      ua.call(target, callOptions()); // newRTCSession follows at once
    } catch (e) {
      log('cannot call ' + target + ': ' + e.message);
      setCall('ended: invalid target');
    }
  }

  function answer() {
    if (!session || state.call !== 'ringing') return;
    $('answer-button').disabled = true;
    session.answer({ mediaConstraints: MEDIA, pcConfig: PC_CONFIG });
  }

  function decline() {
    if (!session || state.call !== 'ringing') return;
    session.terminate({ status_code: 603, reason_phrase: 'Decline' });
  }

  // Cancels, rejects or ends (BYE) the call, whatever its state.
  function hangup() {
    if (session) session.terminate();
  }

  function toggleMute() {
    if (!session || state.call !== 'in call') return;
    if (session.isMuted().audio) session.unmute({ audio: true });
    else session.mute({ audio: true });
  }

  // A new call, ours or the other party's; a second one gets 486 Busy Here.
  function onNewSession(e) {
    const s = e.session;
    if (session && session !== s) {
      if (e.originator === 'remote') s.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    session = s;
    remoteStream = null;
    state.peer = s.remote_identity ? s.remote_identity.uri.toString() : '';
    setMuted(false);
    const mine = () => session === s;
    s.on('progress', () => mine() && s.direction === 'outgoing' && setCall('early'));
    s.on('accepted', () => mine() && setCall('in call'));
    s.on('confirmed', () => mine() && setCall('in call'));
    s.on('muted', () => mine() && setMuted(true));
    s.on('unmuted', () => mine() && setMuted(false));
    if (CODECS.length) {
      s.on('sdp', (ev) => {
        if (ev.originator === 'local') ev.sdp = onlyCodecs(ev.sdp);
      });
    }
    s.on('ended', (ev) => callOver(s, ev));
    s.on('failed', (ev) => callOver(s, ev));
    if (s.connection) watchPeerConnection(s.connection);
    else s.on('peerconnection', (ev) => watchPeerConnection(ev.peerconnection));
    setCall(e.originator === 'local' ? 'calling' : 'ringing');
  }

  function callOver(s, ev) {
    if (session !== s) return;
    session = null;
    remoteStream = null;
    $('remote-audio').srcObject = null;
    setMuted(false);
    setCall('ended: ' + causeWord(ev && ev.cause, 'terminated'));
  }

  // ---------------------------------------------------------------- media

  // Plays the remote audio track as it arrives.
  function watchPeerConnection(pc) {
    pc.addEventListener('track', (ev) => {
      if (ev.track.kind !== 'audio') return;
      remoteStream = ev.streams[0] || new MediaStream([ev.track]);
      const audio = $('remote-audio');
      audio.srcObject = remoteStream;
      audio.play().catch((e) => log('audio does not play: ' + e.message));
    });
  }

  // RTP counters of the call's audio (getStats: inbound-rtp, outbound-rtp,
  // the codec in use). Rejects when there is no call.
  async function stats() {
    const pc = session && session.connection;
    if (!pc) throw new Error('no call');
    const report = await pc.getStats();
    const out = {
      packetsReceived: 0, packetsSent: 0, bytesReceived: 0, bytesSent: 0,
      audioLevel: null, totalAudioEnergy: null, codec: null,
    };
    let codecId = null;
    report.forEach((r) => {
      if ((r.kind || r.mediaType) !== 'audio') return;
      if (r.type === 'inbound-rtp') {
        out.packetsReceived += r.packetsReceived || 0;
        out.bytesReceived += r.bytesReceived || 0;
        if (r.audioLevel !== undefined) out.audioLevel = r.audioLevel;
        if (r.totalAudioEnergy !== undefined) out.totalAudioEnergy = r.totalAudioEnergy;
        codecId = r.codecId || codecId;
      } else if (r.type === 'outbound-rtp') {
        out.packetsSent += r.packetsSent || 0;
        out.bytesSent += r.bytesSent || 0;
        codecId = codecId || r.codecId;
      }
    });
    const codec = codecId && report.get(codecId);
    if (codec && codec.mimeType) out.codec = codec.mimeType.replace(/^audio\//i, '');
    return out;
  }

  let audioContext = null;
  const FFT_SIZE = 8192;

  // The remote audio's mean power spectrum over `ms` (WebAudio analyser):
  // { power: linear power per bin, binHz }.
  async function spectrum(ms) {
    if (!remoteStream) throw new Error('no remote audio');
    if (!audioContext) audioContext = new AudioContext();
    if (audioContext.state === 'suspended') await audioContext.resume();
    const source = audioContext.createMediaStreamSource(remoteStream);
    const analyser = audioContext.createAnalyser();
    analyser.fftSize = FFT_SIZE;
    analyser.smoothingTimeConstant = 0;
    const silent = audioContext.createGain(); // keeps the graph pulled
    silent.gain.value = 0;
    source.connect(analyser);
    analyser.connect(silent);
    silent.connect(audioContext.destination);
    const bins = new Float32Array(analyser.frequencyBinCount);
    const power = new Float64Array(bins.length);
    let frames = 0;
    const end = performance.now() + ms;
    try {
      while (performance.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        analyser.getFloatFrequencyData(bins);
        for (let i = 0; i < bins.length; i++) {
          if (Number.isFinite(bins[i])) power[i] += Math.pow(10, bins[i] / 10);
        }
        frames++;
      }
    } finally {
      source.disconnect();
      analyser.disconnect();
      silent.disconnect();
    }
    for (let i = 0; i < power.length; i++) power[i] /= Math.max(frames, 1);
    return { power, binHz: audioContext.sampleRate / FFT_SIZE };
  }

  const MIN_HZ = 100;
  const SILENCE = 1e-13; // -130 dB: nothing there

  // The strongest frequency (Hz, to 0.1) of the remote audio over ~0.5 s,
  // ignoring bins below 100 Hz; null when it is silent.
  async function dominantFrequency() {
    const { power, binHz } = await spectrum(500);
    let best = -1;
    for (let i = Math.ceil(MIN_HZ / binHz); i < power.length; i++) {
      if (best < 0 || power[i] > power[best]) best = i;
    }
    if (best < 0 || power[best] < SILENCE) return null;
    // Parabolic interpolation on the dB of the peak and its neighbours.
    let offset = 0;
    if (best > 0 && best < power.length - 1) {
      const [a, b, c] = [power[best - 1], power[best], power[best + 1]].map(db);
      const denominator = a - 2 * b + c;
      if (Number.isFinite(denominator) && denominator !== 0) offset = (0.5 * (a - c)) / denominator;
    }
    return Math.round((best + offset) * binHz * 10) / 10;
  }

  // The remote audio's level at `freqHz` over ~0.5 s, in dB on the
  // AnalyserNode's scale (getFloatFrequencyData, to 0.1), the strongest bin
  // within two of it; null when nothing is there.
  async function toneLevel(freqHz) {
    const { power, binHz } = await spectrum(500);
    const at = Math.round(Number(freqHz) / binHz);
    let most = 0;
    for (let i = Math.max(at - 2, 0); i <= Math.min(at + 2, power.length - 1); i++) {
      most = Math.max(most, power[i]);
    }
    return most < SILENCE ? null : Math.round(db(most) * 10) / 10;
  }

  function db(power) {
    return 10 * Math.log10(power);
  }

  // ----------------------------------------------------------- start, API

  function start() {
    if (query.has('debug')) JsSIP.debug.enable('JsSIP:*'); // to the console
    else JsSIP.debug.disable();
    $('login-form').addEventListener('submit', register);
    $('unregister-button').addEventListener('click', unregister);
    $('dial-form').addEventListener('submit', dial);
    $('answer-button').addEventListener('click', answer);
    $('decline-button').addEventListener('click', decline);
    $('hangup-button').addEventListener('click', hangup);
    $('mute-button').addEventListener('click', toggleMute);
    window.addEventListener('pagehide', stopUa);
    render();
    announce('reg');
    announce('call');
    return loadSettings();
  }

  // For browser tests. `ready` resolves once the form holds the settings.
  window.phone = {
    state: snapshot,
    stats,
    dominantFrequency,
    toneLevel,
    ready: start(),
  };
})();
