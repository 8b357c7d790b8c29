using UnityEngine;
#if ENABLE_INPUT_SYSTEM
using UnityEngine.InputSystem;
#endif

/// <summary>
/// The sample's walker: WASD to move, the mouse (right button held) to look, Space and C to go
/// up and down (flying: the world may have no ground yet). Works with the Input System package
/// and with the legacy Input Manager.
/// </summary>
public class SampleFirstPerson : MonoBehaviour
{
    public float speed = 8f;
    public float lookSpeed = 0.2f;
    float yaw, pitch;

    void Update()
    {
        Vector3 move;
        Vector2 look;
        Read(out move, out look);
        yaw += look.x * lookSpeed;
        pitch = Mathf.Clamp(pitch - look.y * lookSpeed, -89f, 89f);
        transform.rotation = Quaternion.Euler(pitch, yaw, 0f);
        transform.position += transform.rotation * move * (speed * Time.deltaTime);
    }

    static void Read(out Vector3 move, out Vector2 look)
    {
#if ENABLE_INPUT_SYSTEM
        var k = Keyboard.current;
        var m = Mouse.current;
        move = k == null ? Vector3.zero : new Vector3(
            (k.dKey.isPressed ? 1 : 0) - (k.aKey.isPressed ? 1 : 0),
            (k.spaceKey.isPressed ? 1 : 0) - (k.cKey.isPressed ? 1 : 0),
            (k.wKey.isPressed ? 1 : 0) - (k.sKey.isPressed ? 1 : 0));
        look = m != null && m.rightButton.isPressed ? m.delta.ReadValue() : Vector2.zero;
#else
        move = new Vector3(
            (Input.GetKey(KeyCode.D) ? 1 : 0) - (Input.GetKey(KeyCode.A) ? 1 : 0),
            (Input.GetKey(KeyCode.Space) ? 1 : 0) - (Input.GetKey(KeyCode.C) ? 1 : 0),
            (Input.GetKey(KeyCode.W) ? 1 : 0) - (Input.GetKey(KeyCode.S) ? 1 : 0));
        look = Input.GetMouseButton(1) ? new Vector2(Input.GetAxis("Mouse X"), Input.GetAxis("Mouse Y")) * 10f : Vector2.zero;
#endif
    }
}
