// Vocabulary of the generated search catalog, and a small seeded random generator shared by the generators.

/** Nouns and adjectives used for filenames, tags and label descriptions. */
export const WORDS = `
beach sunset mountain river forest lake ocean island desert canyon valley meadow glacier volcano waterfall
city street bridge tower castle church temple market harbor station airport stadium museum library garden
park village farm barn cabin lighthouse skyline alley subway highway tunnel square fountain statue monument
dog cat horse bird eagle owl fox wolf bear deer rabbit squirrel dolphin whale shark turtle frog butterfly bee
flower rose tulip daisy orchid sunflower cactus fern moss oak pine maple palm bamboo willow birch cherry
apple banana orange lemon grape strawberry peach pear melon pizza pasta salad soup bread cake cookie coffee
tea wine beer cheese burger sushi noodle taco pancake chocolate icecream breakfast dinner picnic party
wedding birthday concert festival parade holiday vacation trip journey hike camping skiing surfing sailing
cycling running soccer tennis golf basketball baseball hockey swimming climbing fishing kayak yoga dance
car truck bus train plane boat ship bicycle motorcycle scooter tractor rocket helicopter taxi ferry yacht
portrait selfie family friends baby child kids teacher student doctor chef artist musician painter worker
kitchen bedroom bathroom office classroom studio workshop garage balcony terrace attic basement hallway
window door roof wall floor stairs chair table sofa lamp mirror clock shelf book laptop phone camera guitar
piano violin drum painting sculpture poster map letter ticket receipt invoice document whiteboard screen
morning evening night noon dawn dusk winter spring summer autumn rain snow storm fog cloud rainbow thunder
bright dark colorful vintage modern abstract minimal rustic urban rural cozy quiet busy crowded empty
golden silver wooden stone glass metal paper plastic cotton leather marble brick concrete velvet silk
`
  .trim()
  .split(/\s+/);

/** Colour names of the offline labeller (spec §3.6.7), used as label tags and categories. */
export const COLOURS = [
  'red',
  'orange',
  'yellow',
  'green',
  'cyan',
  'blue',
  'purple',
  'pink',
  'black',
  'white',
  'gray',
];

/** The ten zero-shot categories of the fallback labeller. */
export const CATEGORIES = [
  'animal',
  'person',
  'vehicle',
  'nature',
  'food',
  'building',
  'object',
  'abstract',
  'landscape',
  'indoor scene',
];

export const SCENE_TYPES = [
  'outdoor',
  'indoor',
  'urban',
  'nature',
  'studio',
  'night',
  'underwater',
  'aerial',
];

/** mulberry32: a small deterministic generator; returns floats in [0, 1). */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One element of `items`, chosen with `random`. */
export function pick(random, items) {
  return items[Math.floor(random() * items.length)];
}

/** `count` lowercase hex digits. */
export function hex(random, count) {
  let out = '';
  for (let i = 0; i < count; i++) out += Math.floor(random() * 16).toString(16);
  return out;
}

/** A deterministic UUID v4 string. */
export function uuid(random) {
  const h = hex(random, 32);
  const variant = (8 + Math.floor(random() * 4)).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
