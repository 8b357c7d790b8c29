//! Starting terrain for a development world, so a fresh local gateway shows something to stand
//! on and click on: a game (or the Unity sample) pointed at an empty store otherwise sees only
//! sky, with no surface for a click to hit.
//!
//! The spawn area is the columns of chunks `-radius..=radius` on x and z around the origin:
//! layer `y = -1` solid stone and layer `y = 0` the typical terrain of
//! [`cubewalk_protocol::codec::fixtures::terrain`] (ground 6 to 10 cubes high). Only chunks the
//! store has never written are seeded, and each cube is written only where it still holds air
//! (a conditional put), so restarting the gateway on a kept store never undoes a player's edit.

use cubewalk_protocol::chunk::CHUNK_CUBES;
use cubewalk_protocol::codec::fixtures;
use cubewalk_protocol::{ChunkKey, WorldId};

use crate::store::{ChunkStore, ExpectedEdit, StoreError, SYSTEM_PLAYER};

/// Most chunks on each side of the origin that [`seed_spawn`] takes (a 33 x 33 area of
/// columns, 2,178 chunks): enough for any development session, small enough to seed in seconds.
pub const MAX_SEED_RADIUS: u32 = 16;

/// The spawn area's chunks and what each should hold: `(key, cubes)`, solid below, terrain on top.
pub fn spawn_chunks(radius: u32) -> Vec<(ChunkKey, Box<[i32; CHUNK_CUBES]>)> {
    let r = i32::try_from(radius.min(MAX_SEED_RADIUS)).unwrap_or(0);
    let mut chunks = Vec::new();
    for x in -r..=r {
        for z in -r..=r {
            chunks.push((ChunkKey::new(x, -1, z), fixtures::solid()));
            chunks.push((ChunkKey::new(x, 0, z), fixtures::terrain()));
        }
    }
    chunks
}

/// Seeds the spawn area of `world` (see the module docs) and answers how many chunks it wrote:
/// 0 when every chunk of the area has been written before (by a player or an earlier seeding).
pub async fn seed_spawn(
    store: &dyn ChunkStore,
    world: &WorldId,
    radius: u32,
) -> Result<usize, StoreError> {
    let chunks = spawn_chunks(radius);
    let keys: Vec<ChunkKey> = chunks.iter().map(|(k, _)| *k).collect();
    let mut seeded = 0;
    // One read per fetch-sized batch, then one conditional write per chunk never written.
    for (batch_keys, batch) in keys.chunks(256).zip(chunks.chunks(256)) {
        let stored = store.fetch(world, batch_keys).await?;
        for ((key, cubes), held) in batch.iter().zip(stored) {
            if held.seq != 0 {
                continue;
            }
            let edits: Vec<ExpectedEdit> = cubes
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != 0)
                .map(|(i, v)| ExpectedEdit {
                    index: u16::try_from(i).expect("a chunk has 4096 cubes"),
                    expect: 0,
                    value: *v,
                })
                .collect();
            let (applied, _) = store
                .apply_expected(world, *key, &edits, SYSTEM_PLAYER)
                .await?;
            if applied.changed_from.is_some() {
                seeded += 1;
            }
        }
    }
    Ok(seeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use cubewalk_protocol::codec::decode_chunk as decode;

    #[tokio::test]
    async fn seeds_once_and_never_undoes_an_edit() {
        let store = MemoryStore::new();
        let world = WorldId::new("default").unwrap();
        assert_eq!(seed_spawn(&store, &world, 1).await.unwrap(), 18);
        let top = ChunkKey::new(0, 0, 0);
        let got = store.fetch(&world, &[top]).await.unwrap();
        assert_eq!(*decode(&got[0].blob).unwrap(), *fixtures::terrain());
        let below = store
            .fetch(&world, &[ChunkKey::new(1, -1, -1)])
            .await
            .unwrap();
        assert_eq!(*decode(&below[0].blob).unwrap(), *fixtures::solid());
        assert!(store
            .fetch(&world, &[ChunkKey::new(2, 0, 0), ChunkKey::new(0, 1, 0)])
            .await
            .unwrap()
            .iter()
            .all(|c| c.seq == 0));

        // A player removes a grass cube; seeding again (a restart on a kept store) leaves it.
        let grass = cubewalk_protocol::chunk::cube_index(0, 5, 0).unwrap();
        assert_eq!(fixtures::terrain()[usize::from(grass)], 3);
        store
            .apply_expected(
                &world,
                top,
                &[ExpectedEdit {
                    index: grass,
                    expect: 3,
                    value: 0,
                }],
                "player-1",
            )
            .await
            .unwrap();
        assert_eq!(seed_spawn(&store, &world, 1).await.unwrap(), 0);
        let after = store.fetch(&world, &[top]).await.unwrap();
        assert_eq!(decode(&after[0].blob).unwrap()[usize::from(grass)], 0);
    }

    #[test]
    fn radius_is_bounded() {
        assert_eq!(spawn_chunks(0).len(), 2);
        assert_eq!(spawn_chunks(u32::MAX).len(), 2 * 33 * 33);
    }
}
